//! [`Scope`]: what an adapter's scope extractor decided for one request.

/// The caller's scope, as a scope extractor (an auth extractor of your app, or the signed
/// sessions' [`Sessions`](super::Sessions)) decided it for one request: uploads of different
/// scopes never share chunks, progress or completion, even with identical identifiers.
///
/// A scope is usually a user id or a session id. Convert your extractor into it with a
/// `From` impl; the adapters then accept the extractor wherever they take a scope:
///
/// ```
/// use chunked_upload::adapter::Scope;
///
/// struct User {
///     id: u64,
/// }
///
/// impl From<User> for Scope {
///     fn from(user: User) -> Scope {
///         Scope::new(format!("user-{}", user.id))
///     }
/// }
/// # assert_eq!(Scope::from(User { id: 7 }).value(), "user-7");
/// ```
///
/// A scope made by [`Sessions`](super::Sessions) may carry a `Set-Cookie` header (a session the
/// browser does not have yet); the adapters add it to the answer, whatever the answer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    value: String,
    set_cookie: Option<String>,
}

impl Scope {
    /// The scope `value` (a user id, a tenant, a session id).
    ///
    /// # Security
    /// The scope is the only thing that keeps one user's uploads from another's: derive it
    /// from credentials the server checked, never from a value the client may choose. An
    /// empty value is [`Scope::shared`].
    pub fn new(value: impl Into<String>) -> Scope {
        Scope {
            value: value.into(),
            set_cookie: None,
        }
    }

    /// The one scope every client shares (the empty value): for a single-user tool, where
    /// anyone who can reach the server may see and complete anyone's uploads.
    pub fn shared() -> Scope {
        Scope::new(String::new())
    }

    /// The scope's value, as the core sees it.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` header value the answer must carry, if deciding this scope issued a
    /// session cookie.
    pub fn set_cookie(&self) -> Option<&str> {
        self.set_cookie.as_deref()
    }

    /// The scope with a `Set-Cookie` header value for the answer.
    pub(crate) fn with_set_cookie(mut self, cookie: String) -> Scope {
        self.set_cookie = Some(cookie);
        self
    }

}
