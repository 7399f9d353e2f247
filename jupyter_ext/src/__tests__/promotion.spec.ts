import { deflateRawSync } from 'zlib';

import {
  bundleConnectionNames,
  connectionMapping,
  findZipMember,
  summarizeBundle,
  toBase64
} from '../admin/pages/promotionapi';

/** A zip archive as Python's zipfile writes one: local headers, central directory, end record. */
function zip(members: Record<string, string>, deflate = true): Uint8Array {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(members)) {
    const raw = Buffer.from(text);
    const data = deflate ? deflateRawSync(raw) : raw;
    const fileName = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(fileName.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(deflate ? 8 : 0, 10);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(raw.length, 24);
    entry.writeUInt16LE(fileName.length, 28);
    entry.writeUInt32LE(offset, 42);
    locals.push(local, fileName, data);
    central.push(entry, fileName);
    offset += local.length + fileName.length + data.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(members).length, 8);
  end.writeUInt16LE(Object.keys(members).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, directory, end]));
}

const DEFINITIONS = {
  project: { key: 'FRAUD' },
  datasets: [
    { name: 'tx', connection: 'warehouse' },
    { name: 'merchants', connection: 'warehouse' }
  ],
  scenarios: [
    {
      definition: {
        steps: [
          { type: 'sql', connection: 'reporting', statement: 'select 1' },
          { type: 'run_checks', dataset: 'tx' }
        ],
        triggers: [{ type: 'sql_condition', connection: 'audit_db' }]
      }
    },
    { definition: { steps: [{ type: 'notebook', notebook: 'a.ipynb' }] } }
  ]
};

describe('bundleConnectionNames', () => {
  it("names datasets', SQL steps' and SQL triggers' connections once each, sorted", () => {
    expect(bundleConnectionNames(DEFINITIONS)).toEqual([
      'audit_db',
      'reporting',
      'warehouse'
    ]);
  });

  it('names none for definitions without connections or not an object', () => {
    expect(bundleConnectionNames({ datasets: [], scenarios: [] })).toEqual([]);
    expect(bundleConnectionNames(null)).toEqual([]);
  });
});

describe('connectionMapping', () => {
  it('maps only the connections chosen as another one', () => {
    expect(
      connectionMapping(['reporting', 'warehouse', 'audit_db'], {
        warehouse: 'prod_warehouse',
        reporting: 'reporting'
      })
    ).toEqual({ warehouse: 'prod_warehouse' });
  });

  it('leaves out choices for connections the bundle does not name', () => {
    expect(
      connectionMapping(['warehouse'], { other: 'prod', warehouse: '' })
    ).toEqual({});
  });
});

describe('reading a bundle file', () => {
  const manifest = JSON.stringify({ project: 'FRAUD', version: 3 });

  it('finds a stored member through the central directory', () => {
    const archive = zip({ 'a.txt': 'first', 'b.txt': 'second' }, false);
    const member = findZipMember(archive, 'b.txt');
    expect(member?.method).toBe(0);
    expect(Buffer.from(member!.data).toString()).toBe('second');
    expect(findZipMember(archive, 'c.txt')).toBeNull();
  });

  it('is null for what is not a zip archive', () => {
    expect(
      findZipMember(new TextEncoder().encode('not a zip'), 'x')
    ).toBeNull();
    expect(findZipMember(new Uint8Array(0), 'x')).toBeNull();
  });

  it('summarizes a deflated bundle: its project, version and connections', async () => {
    const archive = zip({
      'manifest.json': manifest,
      'definitions.json': JSON.stringify(DEFINITIONS)
    });
    expect(await summarizeBundle(archive)).toEqual({
      project: 'FRAUD',
      version: 3,
      connections: ['audit_db', 'reporting', 'warehouse']
    });
  });

  it('says the connections are unknown when the definitions do not read', async () => {
    const archive = zip({
      'manifest.json': manifest,
      'definitions.json': '{not json'
    });
    expect(await summarizeBundle(archive)).toEqual({
      project: 'FRAUD',
      version: 3,
      connections: null
    });
  });
});

describe('toBase64', () => {
  it('encodes bytes as the server decodes them, beyond one chunk', () => {
    const bytes = new Uint8Array(70000).map((_, index) => index % 251);
    expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
  });
});
