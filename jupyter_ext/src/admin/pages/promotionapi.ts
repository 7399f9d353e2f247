/**
 * The API calls of the Promotion page, through the lab's client, and the pure logic it needs:
 * which connections a bundle file names (read from its `definitions.json` in the browser, so
 * that they can be mapped before the server's preview) and the mapping sent with it.
 *
 * A bundle file travels base64-encoded in a JSON body (`content`), as the server's
 * `PreviewBundle` and `ImportBundle` take it.
 */
import type { HimaliaClient } from '../../api';
import type { components } from '../../schema';
import type { DescribeBundle } from '../../types';
import type { Variables } from '../../jsonedit';

type Schemas = components['schemas'];

export type BundlePreview = Schemas['BundlePreview'];
export type BundleChange = Schemas['BundleChange'];
export type SigningKey = Schemas['SigningKey'];
export type DescribeTrustedKey = Schemas['DescribeTrustedKey'];
export type TrustKey = Schemas['TrustKey'];

function segment(value: string): string {
  return encodeURIComponent(value);
}

// -- instance variables --------------------------------------------------------------------------

export async function getInstanceVariables(
  client: HimaliaClient
): Promise<Variables> {
  const reply = await client.request<{ variables: Variables }>('variables');
  return reply.variables;
}

export async function setInstanceVariables(
  client: HimaliaClient,
  variables: Variables
): Promise<Variables> {
  const reply = await client.request<{ variables: Variables }>(
    'variables',
    'PUT',
    { variables }
  );
  return reply.variables;
}

// -- bundle keys ---------------------------------------------------------------------------------

export function signingKey(client: HimaliaClient): Promise<SigningKey> {
  return client.request('bundle-keys/signing');
}

export function trustedKeys(
  client: HimaliaClient
): Promise<DescribeTrustedKey[]> {
  return client.request('bundle-keys/trusted');
}

export function trustKey(
  client: HimaliaClient,
  spec: TrustKey
): Promise<DescribeTrustedKey> {
  return client.request('bundle-keys/trusted', 'POST', spec);
}

/** Stop trusting a key stored here (keys from the configuration stay: they are the operator's). */
export function untrustKey(client: HimaliaClient, name: string): Promise<void> {
  return client.request(`bundle-keys/trusted/${segment(name)}`, 'DELETE');
}

// -- bundles -------------------------------------------------------------------------------------

export function listBundles(
  client: HimaliaClient,
  key: string
): Promise<DescribeBundle[]> {
  return client.request(`projects/${segment(key)}/bundles`);
}

/** What importing `content` (base64) into project `key` would change; nothing is stored. */
export function previewBundle(
  client: HimaliaClient,
  key: string,
  content: string,
  mapping: Record<string, string>
): Promise<BundlePreview> {
  return client.request(`projects/${segment(key)}/bundles/preview`, 'POST', {
    content,
    map_connections: mapping
  });
}

export function importBundle(
  client: HimaliaClient,
  key: string,
  content: string,
  mapping: Record<string, string>,
  activate: boolean
): Promise<BundlePreview> {
  return client.request(`projects/${segment(key)}/bundles/import`, 'POST', {
    content,
    map_connections: mapping,
    activate
  });
}

/**
 * What activating a stored version would change: its file previewed with the mapping it was
 * imported with, which activation applies too (downloading and previewing are both audited).
 */
export async function previewActivation(
  client: HimaliaClient,
  bundle: DescribeBundle
): Promise<BundlePreview> {
  const response = await client.fetch(
    `projects/${segment(bundle.project)}/bundles/${bundle.version}/download`
  );
  const content = toBase64(new Uint8Array(await response.arrayBuffer()));
  return previewBundle(client, bundle.project, content, bundle.connection_map);
}

export function activateVersion(
  client: HimaliaClient,
  key: string,
  version: number
): Promise<BundlePreview> {
  return client.request(
    `projects/${segment(key)}/bundles/${version}/activate`,
    'POST',
    {}
  );
}

// -- reading a bundle file in the browser --------------------------------------------------------

/** A file's bytes as base64, as the JSON bodies carry a bundle. */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  const chunk = 0x8000;
  for (let start = 0; start < bytes.length; start += chunk) {
    binary += String.fromCharCode(...bytes.subarray(start, start + chunk));
  }
  return btoa(binary);
}

export interface IZipMember {
  /** 0: stored, 8: deflated. */
  method: number;
  data: Uint8Array;
}

/**
 * The compressed bytes of the member `name` of a zip archive, found through its central
 * directory; null when the archive does not hold it or is not a zip archive.
 */
export function findZipMember(
  archive: Uint8Array,
  name: string
): IZipMember | null {
  const view = new DataView(
    archive.buffer,
    archive.byteOffset,
    archive.byteLength
  );
  const END = 0x06054b50;
  let end = -1;
  for (
    let at = archive.length - 22;
    at >= 0 && at >= archive.length - 65557;
    at--
  ) {
    if (view.getUint32(at, true) === END) {
      end = at;
      break;
    }
  }
  if (end < 0) {
    return null;
  }
  const count = view.getUint16(end + 10, true);
  let entry = view.getUint32(end + 16, true);
  const decoder = new TextDecoder();
  for (let index = 0; index < count; index++) {
    if (
      entry + 46 > archive.length ||
      view.getUint32(entry, true) !== 0x02014b50
    ) {
      return null;
    }
    const method = view.getUint16(entry + 10, true);
    const size = view.getUint32(entry + 20, true);
    const nameLength = view.getUint16(entry + 28, true);
    const extraLength = view.getUint16(entry + 30, true);
    const commentLength = view.getUint16(entry + 32, true);
    const local = view.getUint32(entry + 42, true);
    const entryName = decoder.decode(
      archive.subarray(entry + 46, entry + 46 + nameLength)
    );
    if (entryName === name) {
      if (local + 30 > archive.length) {
        return null;
      }
      const start =
        local +
        30 +
        view.getUint16(local + 26, true) +
        view.getUint16(local + 28, true);
      return { method, data: archive.subarray(start, start + size) };
    }
    entry += 46 + nameLength + extraLength + commentLength;
  }
  return null;
}

/** Every connection a bundle's definitions name: datasets', SQL steps' and SQL triggers'. */
export function bundleConnectionNames(definitions: unknown): string[] {
  const names = new Set<string>();
  const named = (part: unknown) => {
    const connection = (part as { connection?: unknown } | null)?.connection;
    if (typeof connection === 'string') {
      names.add(connection);
    }
  };
  const plain = (definitions ?? {}) as {
    datasets?: unknown[];
    scenarios?: { definition?: { steps?: unknown[]; triggers?: unknown[] } }[];
  };
  (plain.datasets ?? []).forEach(named);
  for (const scenario of plain.scenarios ?? []) {
    [
      ...(scenario.definition?.steps ?? []),
      ...(scenario.definition?.triggers ?? [])
    ].forEach(named);
  }
  return [...names].sort();
}

/** A JSON member of a zip archive, or null when it cannot be read here. */
async function readJsonMember(
  archive: Uint8Array,
  name: string
): Promise<unknown> {
  const member = findZipMember(archive, name);
  if (member === null || (member.method !== 0 && member.method !== 8)) {
    return null;
  }
  try {
    let bytes = member.data;
    if (member.method === 8) {
      const inflated = new Blob([bytes as BlobPart])
        .stream()
        .pipeThrough(new DecompressionStream('deflate-raw'));
      bytes = new Uint8Array(await new Response(inflated).arrayBuffer());
    }
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export interface IBundleSummary {
  /** The project the bundle is of (its manifest's), which it can only be imported as. */
  project: string | null;
  version: number | null;
  /** The connections it names, null when its definitions cannot be read in the browser. */
  connections: string[] | null;
}

/** What the page shows of a chosen file before asking the server; the server verifies it all. */
export async function summarizeBundle(
  archive: Uint8Array
): Promise<IBundleSummary> {
  const manifest = (await readJsonMember(archive, 'manifest.json')) as {
    project?: unknown;
    version?: unknown;
  } | null;
  const definitions = await readJsonMember(archive, 'definitions.json');
  return {
    project: typeof manifest?.project === 'string' ? manifest.project : null,
    version: typeof manifest?.version === 'number' ? manifest.version : null,
    connections:
      definitions === null ? null : bundleConnectionNames(definitions)
  };
}

/**
 * The `map_connections` to send: each named connection chosen as another of this instance's;
 * a connection left as itself (or unchosen) is not mapped.
 */
export function connectionMapping(
  named: string[],
  chosen: Record<string, string>
): Record<string, string> {
  const mapping: Record<string, string> = {};
  for (const name of named) {
    const target = chosen[name];
    if (target && target !== name) {
      mapping[name] = target;
    }
  }
  return mapping;
}
