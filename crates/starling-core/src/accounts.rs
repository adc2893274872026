//! Registration, profiles and account lookups.

use starling_domain::account::{
    parse_display_name, parse_fields, parse_language, parse_note, Privacy, ProfileField,
    ProfileUpdate,
};
use starling_domain::validation::ErrorCode;
use starling_domain::{
    Account, Email, FieldError, Id, Password, Scope, Username, ValidationErrors,
};
use starling_store::NewAccount;

use crate::media::ProfileImage;
use crate::oauth::IssuedToken;
use crate::{Core, CoreError, CoreResult, Principal};

/// `POST /api/v1/accounts` input, as received.
#[derive(Clone, Debug, Default)]
pub struct Registration {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub agreement: bool,
    pub locale: Option<String>,
    pub reason: Option<String>,
}

/// `PATCH /api/v1/accounts/update_credentials` input, as received.
#[derive(Clone, Debug, Default)]
pub struct ProfileInput {
    pub display_name: Option<String>,
    pub note: Option<String>,
    pub locked: Option<bool>,
    pub bot: Option<bool>,
    pub discoverable: Option<bool>,
    pub privacy: Option<String>,
    pub sensitive: Option<bool>,
    pub language: Option<String>,
    pub fields: Option<Vec<ProfileField>>,
    /// New profile picture and header, as uploaded.
    pub avatar: Option<bytes::Bytes>,
    pub header: Option<bytes::Bytes>,
}

/// Validated registration data.
struct Applicant {
    username: Username,
    email: Email,
    password: Password,
    locale: Option<String>,
}

fn validate(r: &Registration) -> Result<Applicant, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let username = errors.check(Username::parse_new(r.username.as_deref().unwrap_or("")));
    let email = errors.check(Email::parse(r.email.as_deref().unwrap_or("")));
    let password = errors.check(Password::parse(r.password.as_deref().unwrap_or("")));
    if !r.agreement {
        errors.push(FieldError::new(
            "agreement",
            ErrorCode::Accepted,
            "must be accepted",
        ));
    }
    let locale = errors.check(parse_language(r.locale.as_deref().unwrap_or("")));
    match (username, email, password, locale) {
        (Some(username), Some(email), Some(password), Some(locale)) if errors.is_empty() => {
            Ok(Applicant {
                username,
                email,
                password,
                locale,
            })
        }
        _ => Err(errors),
    }
}

impl Core {
    /// Registers an account through an app token and returns a user token
    /// for that app with the app token's scopes, usable at once.
    pub async fn register(
        &self,
        caller: &Principal,
        input: Registration,
    ) -> CoreResult<IssuedToken> {
        caller.require_scope(&[Scope::WriteAccounts])?;
        if caller.account_id.is_some() {
            return Err(CoreError::Forbidden(
                "This method requires an application token",
            ));
        }
        if !self.settings.registrations_open {
            return Err(CoreError::Forbidden(
                "Registrations are closed on this server",
            ));
        }
        let account = self.create_account(&input).await?;
        let app = self.app(caller.app_id).await?;
        let token = self
            .issue_token(&app, Some(account.id), caller.scopes)
            .await?;
        tracing::info!(account_id = %account.id, app_id = %app.id, "account registered");
        Ok(token)
    }

    /// Creates an account (registration, and the operators' admin command).
    pub async fn create_account(&self, input: &Registration) -> CoreResult<Account> {
        let a = validate(input)?;
        // Cheap early answers before paying for a password hash; the store
        // still decides under concurrency.
        let mut taken = ValidationErrors::default();
        if self
            .store
            .account_by_username(&a.username.key())
            .await?
            .is_some()
        {
            taken.push(FieldError::taken("username"));
        }
        if self.store.login_by_email(&a.email.key()).await?.is_some() {
            taken.push(FieldError::taken("email"));
        }
        taken.into_result()?;
        let password_hash = self.passwords.hash(a.password.expose().to_owned()).await?;
        let account = Account::new(
            self.ids.next(a.username.shard()),
            a.username.as_str(),
            a.locale.clone(),
            self.clock.now_ms(),
        );
        self.write_account(&NewAccount {
            account: account.clone(),
            email: a.email.as_str().to_owned(),
            email_key: a.email.key(),
            password_hash,
            locale: a.locale,
        })
        .await?;
        Ok(account)
    }

    pub async fn account(&self, id: Id) -> CoreResult<Account> {
        self.store.account(id).await?.ok_or(CoreError::NotFound)
    }

    /// Looks up `user`, `@user` or `user@<local domain>`; other domains are
    /// not found (no federation yet).
    pub async fn lookup(&self, acct: &str, local_domain: &str) -> CoreResult<Account> {
        let acct = acct.trim().trim_start_matches('@');
        let username = match acct.split_once('@') {
            Some((user, domain)) if domain.eq_ignore_ascii_case(local_domain) => user,
            Some(_) => return Err(CoreError::NotFound),
            None => acct,
        };
        let username = Username::parse(username).map_err(|_| CoreError::NotFound)?;
        self.store
            .account_by_username(&username.key())
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// The caller's own account with its private `source` data.
    pub async fn own_account(&self, caller: &Principal) -> CoreResult<Account> {
        caller.require_scope(&[Scope::ReadAccounts, Scope::Profile])?;
        self.account(caller.user()?).await
    }

    pub async fn update_profile(
        &self,
        caller: &Principal,
        input: ProfileInput,
    ) -> CoreResult<Account> {
        caller.require_scope(&[Scope::WriteAccounts])?;
        let id = caller.user()?;
        let mut errors = ValidationErrors::default();
        let mut update = ProfileUpdate {
            display_name: input
                .display_name
                .as_deref()
                .and_then(|s| errors.check(parse_display_name(s))),
            note: input
                .note
                .as_deref()
                .and_then(|s| errors.check(parse_note(s))),
            locked: input.locked,
            bot: input.bot,
            discoverable: input.discoverable,
            privacy: match input.privacy.as_deref() {
                None => None,
                Some(p) => errors.check(
                    Privacy::parse(p)
                        .filter(|p| *p != Privacy::Direct)
                        .ok_or_else(|| {
                            FieldError::new(
                                "privacy",
                                ErrorCode::Inclusion,
                                "is not included in the list",
                            )
                        }),
                ),
            },
            sensitive: input.sensitive,
            language: match input.language.as_deref() {
                None => None,
                Some(l) => errors.check(parse_language(l).map_err(|e| FieldError {
                    field: "language",
                    ..e
                })),
            },
            fields: input.fields.and_then(|f| errors.check(parse_fields(f))),
            avatar: None,
            header: None,
        };
        errors.into_result()?;
        // The files first: the profile never points at a missing one.
        if let Some(bytes) = input.avatar {
            update.avatar = Some(
                self.store_profile_image(id, bytes, ProfileImage::Avatar)
                    .await?,
            );
        }
        if let Some(bytes) = input.header {
            update.header = Some(
                self.store_profile_image(id, bytes, ProfileImage::Header)
                    .await?,
            );
        }
        let before = if update.avatar.is_some() || update.header.is_some() {
            Some(self.account(id).await?)
        } else {
            None
        };
        let account = self
            .write_profile(id, &update)
            .await?
            .ok_or(CoreError::NotFound)?;
        if let Some(before) = before {
            let replaced = [
                before.avatar.filter(|_| update.avatar.is_some()),
                before.header.filter(|_| update.header.is_some()),
            ];
            for key in replaced.into_iter().flatten() {
                self.forget_media_file(&key).await;
            }
        }
        Ok(account)
    }

    pub async fn count_accounts(&self) -> CoreResult<u64> {
        Ok(self.store.count_accounts().await?)
    }
}
