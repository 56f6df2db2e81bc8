//! `webcare token ...`: API tokens for the agent API.

use std::process::ExitCode;

use anyhow::anyhow;

use super::TokenCommand;
use super::service::{load_for_queue, open_storage};
use crate::care::store::NewToken;
use crate::care::{Role, tokens};

pub async fn run(command: &TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            config,
            name,
            brand,
            agency,
            role,
        } => {
            let config_file = load_for_queue(config)?;
            let role = Role::parse(role)
                .ok_or_else(|| anyhow!("--role {role:?}: one of agent, second_line, admin"))?;
            if *agency && role != Role::Admin {
                return Err(anyhow!(
                    "--agency tokens are admin tokens; drop --role or use --role admin"
                ));
            }
            let role = if *agency { Role::Admin } else { role };
            if let Some(b) = brand
                && !config_file.brands.iter().any(|x| &x.id == b)
            {
                return Err(anyhow!(
                    "--brand {b:?}: no such brand in {}",
                    config.display()
                ));
            }
            let name = name.trim();
            if name.is_empty() || name.chars().count() > crate::care::workflow::MAX_NAME_CHARS {
                return Err(anyhow!(
                    "--name must be 1 to {} characters",
                    crate::care::workflow::MAX_NAME_CHARS
                ));
            }
            let storage = open_storage(&config_file).await?;
            let store = storage.care().ok_or_else(|| {
                anyhow!(
                    "the {} storage backend does not keep API tokens yet",
                    storage.backend_name()
                )
            })?;
            let secret = tokens::generate();
            let record = store
                .create_token(&NewToken {
                    name: name.to_string(),
                    brand: brand.clone(),
                    role,
                    hash: tokens::hash(&secret),
                    at: jiff::Timestamp::now().as_millisecond(),
                })
                .await?;
            eprintln!(
                "token {} for {:?} ({}, {}); it is shown only now:",
                record.id,
                record.name,
                record.brand.as_deref().unwrap_or("every brand"),
                record.role.as_str()
            );
            println!("{secret}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { config, brand } => {
            let config_file = load_for_queue(config)?;
            let storage = open_storage(&config_file).await?;
            let store = storage.care().ok_or_else(|| {
                anyhow!(
                    "the {} storage backend does not keep API tokens yet",
                    storage.backend_name()
                )
            })?;
            let list = store.tokens(brand.as_deref()).await?;
            println!(
                "{:>4} {:<20} {:<12} {:<12} STATE",
                "ID", "NAME", "BRAND", "ROLE"
            );
            for t in &list {
                println!(
                    "{:>4} {:<20} {:<12} {:<12} {}",
                    t.id,
                    t.name,
                    t.brand.as_deref().unwrap_or("(agency)"),
                    t.role.as_str(),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            if list.is_empty() {
                println!("(no tokens)");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { config, id } => {
            let config_file = load_for_queue(config)?;
            let storage = open_storage(&config_file).await?;
            let store = storage.care().ok_or_else(|| {
                anyhow!(
                    "the {} storage backend does not keep API tokens yet",
                    storage.backend_name()
                )
            })?;
            if store
                .revoke_token(*id, jiff::Timestamp::now().as_millisecond())
                .await?
            {
                eprintln!("token {id} revoked");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(anyhow!("no active token with id {id}"))
            }
        }
    }
}
