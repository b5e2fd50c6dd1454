//! `weft token create|ls|revoke` (admin).

use anyhow::Result;
use clap::Subcommand;
use weft::access::{Role, TokenInfo};
use weft::api::types::{CreateToken, CreatedToken, TokenList};

use super::client::Client;
use super::output::{Output, format_time, print_json, print_table};

/// `weft token` commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// What it allows: viewer, operator or admin.
        #[arg(long)]
        role: Role,
    },
    /// List tokens (without secrets).
    Ls,
    /// Revoke a token.
    Revoke {
        /// The token's id (`tok_...`).
        id: String,
    },
}

/// Runs a `weft token` command.
pub async fn run(client: &Client, output: Output, command: TokenCommand) -> Result<i32> {
    match command {
        TokenCommand::Create { name, role } => {
            let created: CreatedToken = client
                .post("/api/v1/tokens", &CreateToken { name, role })
                .await?;
            match output {
                Output::Json => print_json(&created),
                Output::Text => {
                    println!("{}", created.token);
                    eprintln!(
                        "weft: token {} ({}) created; the secret above is not shown again",
                        created.info.id, created.info.role
                    );
                }
            }
        }
        TokenCommand::Ls => {
            let list: TokenList = client.get("/api/v1/tokens", &[]).await?;
            match output {
                Output::Json => print_json(&list),
                Output::Text => {
                    let rows: Vec<Vec<String>> = list
                        .tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.role.to_string(),
                                t.name.clone(),
                                if t.created_at == 0 {
                                    "-".to_owned()
                                } else {
                                    format_time(t.created_at)
                                },
                            ]
                        })
                        .collect();
                    print_table(&["ID", "ROLE", "NAME", "CREATED"], &rows);
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let revoked: TokenInfo = client.delete(&format!("/api/v1/tokens/{id}")).await?;
            match output {
                Output::Json => print_json(&revoked),
                Output::Text => println!("token {} ({}) revoked", revoked.id, revoked.name),
            }
        }
    }
    Ok(0)
}
