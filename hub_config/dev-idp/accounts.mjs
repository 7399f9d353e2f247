// The dev provider's people: loaded from a JSON file, passwords kept as salted scrypt hashes.
//
// Run as a script to hash a password for accounts.json (read from standard input):
//   echo -n 'the password' | node accounts.mjs hash
import {
  randomBytes,
  scrypt as scryptCallback,
  timingSafeEqual
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { argv } from 'node:process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCallback);

// Stored form: scrypt$<N>$<r>$<p>$<salt, base64url>$<key, base64url>
const SCRYPT = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;

export async function hashPassword(password) {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEY_LENGTH, SCRYPT);
  const { N, r, p } = SCRYPT;
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password, stored) {
  const [scheme, N, r, p, salt, key] = String(stored).split('$');
  if (scheme !== 'scrypt' || !key) {
    return false;
  }
  const expected = Buffer.from(key, 'base64url');
  const cost = { N: Number(N), r: Number(r), p: Number(p) };
  try {
    const actual = await scrypt(
      password,
      Buffer.from(salt, 'base64url'),
      expected.length,
      cost
    );
    return timingSafeEqual(actual, expected);
  } catch {
    return false; // unusable parameters in the stored hash
  }
}

// Compared against when the login is unknown, so both failures take the same time.
const DUMMY_HASH = await hashPassword(randomBytes(16).toString('hex'));

export class AccountStore {
  #byLogin;

  constructor(accounts) {
    this.#byLogin = new Map(accounts.map(account => [account.login, account]));
  }

  static async load(path) {
    const document = JSON.parse(await readFile(path, 'utf8'));
    const accounts = document.accounts ?? [];
    const seen = new Set();
    for (const account of accounts) {
      for (const field of ['login', 'name', 'email', 'password']) {
        if (typeof account[field] !== 'string' || !account[field]) {
          throw new Error(
            `${path}: every account needs a non-empty "${field}" string`
          );
        }
      }
      if (!account.password.startsWith('scrypt$')) {
        throw new Error(
          `${path}: ${account.login}'s password must be a scrypt hash (node accounts.mjs hash ...)`
        );
      }
      if (
        !Array.isArray(account.groups) ||
        account.groups.some(group => typeof group !== 'string')
      ) {
        throw new Error(
          `${path}: ${account.login}'s "groups" must be a list of strings`
        );
      }
      if (seen.has(account.login)) {
        throw new Error(`${path}: ${account.login} is listed twice`);
      }
      seen.add(account.login);
    }
    return new AccountStore(accounts);
  }

  /** The account whose login and password match, or undefined. */
  async authenticate(login, password) {
    const account = this.#byLogin.get(login);
    const ok = await verifyPassword(password, account?.password ?? DUMMY_HASH);
    return ok && account ? account : undefined;
  }

  /** The claims of an account, every one of them; the provider keeps those the grant allows. */
  claims(login) {
    const account = this.#byLogin.get(login);
    if (!account) {
      return undefined;
    }
    return {
      sub: account.login,
      preferred_username: account.login,
      name: account.name,
      email: account.email,
      email_verified: account.email_verified ?? true,
      groups: [...account.groups]
    };
  }
}

// `node accounts.mjs hash < password-file` prints a hash to paste into accounts.json.
if (argv[1] === fileURLToPath(import.meta.url)) {
  if (argv[2] !== 'hash' || argv.length !== 3) {
    console.error(
      'usage: node accounts.mjs hash  (the password on standard input)'
    );
    process.exit(2);
  }
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const password = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (!password) {
    console.error('no password on standard input');
    process.exit(2);
  }
  console.log(await hashPassword(password));
}
