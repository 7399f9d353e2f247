// The HTML the dev provider shows: its sign-in form and its own error and sign-out pages
// (oidc-provider's defaults pull web fonts from the Internet; these are self-contained).

const ESCAPES = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;'
};

export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, char => ESCAPES[char]);
}

const STYLE = `
  body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1f2933; margin: 0; }
  main { max-width: 22rem; margin: 4rem auto; padding: 2rem; background: #fff; border-radius: 6px;
         box-shadow: 0 1px 3px rgb(0 0 0 / 20%); }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
  .note { color: #616e7c; font-size: .85rem; margin: 0 0 1.5rem; }
  label { display: block; font-weight: 600; margin: 1rem 0 .3rem; }
  input { box-sizing: border-box; width: 100%; padding: .5rem; font-size: 1rem; border: 1px solid #9aa5b1;
          border-radius: 4px; }
  button { margin-top: 1.5rem; width: 100%; padding: .6rem; font-size: 1rem; font-weight: 600; color: #fff;
           background: #3e4c9b; border: 0; border-radius: 4px; cursor: pointer; }
  button.secondary { margin-top: .5rem; color: #1f2933; background: #e4e7eb; }
  .error { color: #ab091e; background: #ffe3e3; padding: .6rem; border-radius: 4px; }
  pre { white-space: pre-wrap; word-break: break-word; }
`;

function layout(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)}</title>
  <style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

const DEV_NOTE =
  '<p class="note">Local development identity provider. Not for production use.</p>';

/** The sign-in form; `error` is shown above it after a failed attempt, `login` is kept. */
export function loginPage({ uid, clientName, login = '', error = '' }) {
  return layout(
    'Himalia dev sign-in',
    `<h1>Himalia dev sign-in</h1>
${DEV_NOTE}
<p>Sign in to continue to <strong>${escapeHtml(clientName)}</strong>.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label for="login">Login</label>
  <input id="login" name="login" type="text" autocomplete="username" autocapitalize="none"
         spellcheck="false" value="${escapeHtml(login)}" ${login ? '' : 'autofocus'} required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password"
         ${login ? 'autofocus' : ''} required>
  <button type="submit">Sign in</button>
</form>`
  );
}

/** Shown when an interaction URL is stale: its cookie is gone or the request expired. */
export function expiredPage() {
  return layout(
    'Himalia dev sign-in',
    `<h1>Himalia dev sign-in</h1>
${DEV_NOTE}
<p class="error" role="alert">This sign-in request has expired or is not valid in this browser.</p>
<p>Go back to the application and sign in again.</p>`
  );
}

/** oidc-provider's renderError: `out` holds error, error_description and maybe state. */
export function errorPage(out) {
  const rows = Object.entries(out)
    .map(
      ([key, value]) =>
        `<pre><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</pre>`
    )
    .join('\n');
  return layout(
    'Himalia dev sign-in: error',
    `<h1>Something went wrong</h1>\n${DEV_NOTE}\n${rows}`
  );
}

/** rpInitiatedLogout's confirmation page; `form` is the provider's hidden form (id op.logoutForm). */
export function logoutPage(form) {
  return layout(
    'Himalia dev sign-out',
    `<h1>Sign out of the Himalia dev provider?</h1>
${DEV_NOTE}
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button>
<button class="secondary" type="submit" form="op.logoutForm">Stay signed in</button>`
  );
}

export function logoutSuccessPage() {
  return layout(
    'Himalia dev sign-out',
    `<h1>Signed out</h1>\n${DEV_NOTE}\n<p>You can close this page.</p>`
  );
}
