/**
 * Promotion: what "From a notebook to production" does with the command line, from the panel.
 * This instance's variables (a JSON object, checked before saving); its bundle signing key (what
 * another instance trusts) and the keys it trusts; importing a bundle file (its connections
 * mapped to this instance's, previewed, then imported with or without activation); and a
 * project's stored versions, any of which is activated again (a rollback) after confirming.
 * Every refusal is the server's sentence, in place.
 */
import * as React from 'react';

import type { HimaliaClient } from '../../api';
import { ApiError } from '../../api';
import { errorText } from '../../errors';
import { formatVariables, parseVariables } from '../../jsonedit';
import { formatTime } from '../../times';
import type { DescribeBundle, DescribeConnection } from '../../types';
import type { IAdminPage, IAdminPageProps } from '../page';
import { listProjects } from './projectsadmin';
import {
  BundleChange,
  BundlePreview,
  DescribeTrustedKey,
  IBundleSummary,
  SigningKey,
  activateVersion,
  connectionMapping,
  getInstanceVariables,
  importBundle,
  listBundles,
  previewActivation,
  previewBundle,
  setInstanceVariables,
  signingKey,
  summarizeBundle,
  toBase64,
  trustKey,
  trustedKeys,
  untrustKey
} from './promotionapi';
import { listConnections } from './resources';

/** The server's sentence, with the field it names when it names one the sentence does not. */
function refusalText(error: unknown): string {
  const text = errorText(error);
  if (error instanceof ApiError && error.field && !text.includes(error.field)) {
    return `${error.field}: ${text}`;
  }
  return text;
}

function Refusal(props: { text: string }): React.ReactElement | null {
  return props.text ? (
    <p className="hml-admin-refusal" role="alert">
      {props.text}
    </p>
  ) : null;
}

function Said(props: { text: string }): React.ReactElement | null {
  return props.text ? (
    <p className="hml-admin-said" role="status">
      {props.text}
    </p>
  ) : null;
}

/** What a preview, an import or an activation changes (or changed), one line a change. */
function Changes(props: {
  changes: BundleChange[];
  label: string;
}): React.ReactElement {
  const { changes, label } = props;
  if (changes.length === 0) {
    return <p>Nothing changes: it is what is live.</p>;
  }
  return (
    <ul className="hml-admin-promotion-changes" aria-label={label}>
      {changes.map(change => (
        <li key={`${change.kind}:${change.name}`} data-change={change.change}>
          {change.kind} <code>{change.name}</code> {change.change}
        </li>
      ))}
    </ul>
  );
}

// -- instance variables --------------------------------------------------------------------------

function InstanceVariables(props: {
  client: HimaliaClient;
}): React.ReactElement {
  const { client } = props;
  const [text, setText] = React.useState<string | null>(null);
  const [saved, setSaved] = React.useState('');
  const [failure, setFailure] = React.useState('');
  const [said, setSaid] = React.useState('');
  const [working, setWorking] = React.useState(false);

  const load = React.useCallback(() => {
    getInstanceVariables(client).then(
      variables => {
        const shown = formatVariables(variables);
        setText(shown);
        setSaved(shown);
      },
      error => setFailure(refusalText(error))
    );
  }, [client]);
  React.useEffect(load, [load]);

  const parsed = text === null ? null : parseVariables(text);
  const invalid = parsed && !parsed.ok ? parsed.error.message : '';

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    if (!parsed || !parsed.ok) {
      return;
    }
    setWorking(true);
    setFailure('');
    setSaid('');
    try {
      const stored = await setInstanceVariables(client, parsed.value);
      const shown = formatVariables(stored);
      setText(shown);
      setSaved(shown);
      setSaid('Saved the instance variables.');
    } catch (error) {
      setFailure(refusalText(error));
    } finally {
      setWorking(false);
    }
  };

  return (
    <section aria-label="Instance variables">
      <h3>Instance variables</h3>
      <p>
        Every project&apos;s variables are resolved over these (
        <code>{'${company}'}</code> in a project variable); bundles never carry
        them, so each instance sets its own. Readable by everyone signed in.
      </p>
      {text === null ? (
        !failure && <p>Loading…</p>
      ) : (
        <form aria-label="Instance variables" onSubmit={save}>
          <label className="hml-admin-promotion-block">
            Variables (a JSON object)
            <textarea
              name="variables"
              value={text}
              rows={8}
              cols={70}
              spellCheck={false}
              aria-invalid={Boolean(invalid)}
              onChange={event => {
                setText(event.target.value);
                setSaid('');
              }}
            />
          </label>
          {invalid && (
            <p className="hml-admin-refusal" role="alert">
              {invalid}
            </p>
          )}
          <button
            type="submit"
            className="hml-admin-primary"
            disabled={working || Boolean(invalid) || text === saved}
          >
            Save variables
          </button>{' '}
          <button
            type="button"
            disabled={working || text === saved}
            onClick={() => {
              setText(saved);
              setFailure('');
            }}
          >
            Revert
          </button>
        </form>
      )}
      <Refusal text={failure} />
      <Said text={said} />
    </section>
  );
}

// -- bundle keys ---------------------------------------------------------------------------------

function BundleKeys(props: { client: HimaliaClient }): React.ReactElement {
  const { client } = props;
  const [own, setOwn] = React.useState<SigningKey | null>(null);
  const [keys, setKeys] = React.useState<DescribeTrustedKey[] | null>(null);
  const [name, setName] = React.useState('');
  const [publicKey, setPublicKey] = React.useState('');
  const [failure, setFailure] = React.useState('');
  const [trustFailure, setTrustFailure] = React.useState('');
  const [said, setSaid] = React.useState('');
  const [generation, setGeneration] = React.useState(0);
  const [untrusting, setUntrusting] = React.useState<string | null>(null);
  const [untrustFailure, setUntrustFailure] = React.useState('');

  const untrust = async (keyName: string) => {
    setUntrustFailure('');
    setSaid('');
    try {
      await untrustKey(client, keyName);
      setUntrusting(null);
      setSaid(`${keyName} is no longer trusted: its bundles do not import.`);
      setGeneration(value => value + 1);
    } catch (error) {
      setUntrustFailure(refusalText(error));
    }
  };

  React.useEffect(() => {
    signingKey(client).then(setOwn, error => setFailure(refusalText(error)));
  }, [client]);
  React.useEffect(() => {
    trustedKeys(client).then(setKeys, error => setFailure(refusalText(error)));
  }, [client, generation]);

  const copy = async () => {
    if (!own) {
      return;
    }
    try {
      await navigator.clipboard.writeText(own.public_key);
      setSaid('Copied.');
    } catch {
      setSaid('The browser refused the clipboard: select the key and copy it.');
    }
  };

  const trust = async (event: React.FormEvent) => {
    event.preventDefault();
    setTrustFailure('');
    setSaid('');
    try {
      const added = await trustKey(client, {
        name: name.trim(),
        public_key: publicKey.trim()
      });
      setName('');
      setPublicKey('');
      setSaid(
        `Trusted ${added.name} (${added.fingerprint}): its bundles import here.`
      );
      setGeneration(value => value + 1);
    } catch (error) {
      setTrustFailure(refusalText(error));
    }
  };

  return (
    <section aria-label="Bundle keys">
      <h3>Bundle keys</h3>
      <p>
        This instance signs its bundles with its key; an instance imports only
        bundles signed by a key it trusts (its own always). Give this key to the
        instances that import from here (<code>himalia bundle key</code>).
      </p>
      <Refusal text={failure} />
      {own && (
        <div
          className="hml-admin-promotion-key"
          role="region"
          aria-label="This instance's signing key"
        >
          <code className="hml-admin-promotion-key-value">
            {own.public_key}
          </code>{' '}
          <button type="button" onClick={copy}>
            Copy
          </button>
          <div className="hml-admin-muted">Fingerprint {own.fingerprint}</div>
        </div>
      )}
      {keys && (
        <table className="hml-admin-promotion-table" aria-label="Trusted keys">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Fingerprint</th>
              <th scope="col">From</th>
              <th scope="col">Added</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {keys.map(key => (
              <tr key={key.name} data-key={key.name}>
                <td>{key.name}</td>
                <td>
                  <code title={key.public_key}>{key.fingerprint}</code>
                </td>
                <td>
                  {key.source === 'instance'
                    ? 'this instance'
                    : key.source === 'config'
                      ? 'configuration (trusted_bundle_keys)'
                      : 'trusted here'}
                </td>
                <td>
                  {key.created_at
                    ? `${formatTime(key.created_at)} by ${key.added_by ?? '—'}`
                    : '—'}
                </td>
                <td>
                  {key.source !== 'store' ? null : untrusting === key.name ? (
                    <span role="group" aria-label={`Untrust ${key.name}`}>
                      Its bundles, stored versions included, stop importing and
                      activating.{' '}
                      <button
                        type="button"
                        className="hml-admin-danger"
                        onClick={() => void untrust(key.name)}
                      >
                        Untrust {key.name}
                      </button>{' '}
                      <button type="button" onClick={() => setUntrusting(null)}>
                        Cancel
                      </button>
                      <Refusal text={untrustFailure} />
                    </span>
                  ) : (
                    <button
                      type="button"
                      onClick={() => {
                        setUntrusting(key.name);
                        setUntrustFailure('');
                      }}
                    >
                      Untrust…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form aria-label="Trust a key" onSubmit={trust}>
        <label>
          Name{' '}
          <input
            name="name"
            value={name}
            required
            maxLength={100}
            size={16}
            placeholder="design"
            onChange={event => setName(event.target.value)}
          />
        </label>{' '}
        <label>
          Public key{' '}
          <input
            name="public_key"
            value={publicKey}
            required
            maxLength={100}
            size={60}
            placeholder="ed25519:…"
            onChange={event => setPublicKey(event.target.value)}
          />
        </label>{' '}
        <button type="submit" className="hml-admin-primary">
          Trust key
        </button>
        <Refusal text={trustFailure} />
      </form>
      <Said text={said} />
    </section>
  );
}

// -- importing a bundle --------------------------------------------------------------------------

interface IChosenFile {
  name: string;
  content: string;
  summary: IBundleSummary;
}

function ImportBundle(props: {
  client: HimaliaClient;
  projects: string[];
  connections: DescribeConnection[];
  onImported: (key: string) => void;
}): React.ReactElement {
  const { client, projects, connections, onImported } = props;
  const [file, setFile] = React.useState<IChosenFile | null>(null);
  const [key, setKey] = React.useState('');
  const [chosen, setChosen] = React.useState<Record<string, string>>({});
  const [activate, setActivate] = React.useState(true);
  const [preview, setPreview] = React.useState<BundlePreview | null>(null);
  const [failure, setFailure] = React.useState('');
  const [said, setSaid] = React.useState('');
  const [working, setWorking] = React.useState(false);

  const named = file?.summary.connections ?? [];
  const mapping = connectionMapping(named, chosen);

  const pick = async (picked: File | undefined) => {
    setPreview(null);
    setFailure('');
    setSaid('');
    setFile(null);
    if (!picked) {
      return;
    }
    const bytes = new Uint8Array(await picked.arrayBuffer());
    const summary = await summarizeBundle(bytes);
    setFile({ name: picked.name, content: toBase64(bytes), summary });
    setChosen({});
    if (summary.project) {
      setKey(summary.project);
    }
  };

  const run = async (
    action: () => Promise<BundlePreview>,
    done: (result: BundlePreview) => void
  ) => {
    setWorking(true);
    setFailure('');
    setSaid('');
    try {
      done(await action());
    } catch (error) {
      setPreview(null);
      setFailure(refusalText(error));
    } finally {
      setWorking(false);
    }
  };

  const previewIt = () =>
    file &&
    run(() => previewBundle(client, key, file.content, mapping), setPreview);
  const importIt = () =>
    file &&
    run(
      () => importBundle(client, key, file.content, mapping, activate),
      result => {
        setPreview(null);
        setSaid(
          `Imported version ${result.bundle.version} of ${key}` +
            (result.activated
              ? `: it is live (${result.changes.length} change${result.changes.length === 1 ? '' : 's'}).`
              : '; activate it below when ready.')
        );
        onImported(key);
      }
    );

  const changed = () => setPreview(null);

  return (
    <section aria-label="Import a bundle">
      <h3>Import a bundle</h3>
      <p>
        A <code>.himalia-bundle</code> file made on another instance (or this
        one) goes into the project of the same key, created if missing. The file
        is checked first: its signature by a trusted key, every file digest, the
        connections, notebooks, tiers and permissions it needs.
      </p>
      <form
        aria-label="Import a bundle"
        onSubmit={event => {
          event.preventDefault();
          void previewIt();
        }}
      >
        <label>
          Bundle file{' '}
          <input
            type="file"
            name="bundle"
            accept=".himalia-bundle,application/zip"
            onChange={event => void pick(event.target.files?.[0])}
          />
        </label>{' '}
        <label>
          Project{' '}
          <input
            name="project"
            value={key}
            list="hml-admin-promotion-projects"
            required
            size={12}
            onChange={event => {
              setKey(event.target.value);
              changed();
            }}
          />
        </label>
        <datalist id="hml-admin-promotion-projects">
          {projects.map(project => (
            <option key={project} value={project} />
          ))}
        </datalist>
        {file && file.summary.project && (
          <p className="hml-admin-muted">
            {file.name}: version {file.summary.version ?? '?'} of{' '}
            {file.summary.project}
            {key && key !== file.summary.project
              ? ` (it imports as ${file.summary.project} only)`
              : ''}
            .
          </p>
        )}
        {file && named.length > 0 && (
          <fieldset className="hml-admin-promotion-mapping">
            <legend>
              Connections: the bundle&apos;s, as this instance&apos;s
            </legend>
            {named.map(name => (
              <label key={name} className="hml-admin-promotion-block">
                <code>{name}</code> →{' '}
                <select
                  aria-label={`Connection ${name}`}
                  value={chosen[name] ?? name}
                  onChange={event => {
                    setChosen({ ...chosen, [name]: event.target.value });
                    changed();
                  }}
                >
                  {!connections.some(c => c.name === name) && (
                    <option value={name}>{name} (none here)</option>
                  )}
                  {connections.map(connection => (
                    <option key={connection.name} value={connection.name}>
                      {connection.name}
                    </option>
                  ))}
                </select>
              </label>
            ))}
          </fieldset>
        )}
        {file && file.summary.connections === null && (
          <p className="hml-admin-muted">
            Its connections could not be read here; the preview names any that
            is missing.
          </p>
        )}
        <label>
          <input
            type="checkbox"
            name="activate"
            checked={activate}
            onChange={event => setActivate(event.target.checked)}
          />{' '}
          Activate it on import (make it the project&apos;s live definitions)
        </label>
        <p>
          <button type="submit" disabled={!file || !key || working}>
            Preview
          </button>{' '}
          <button
            type="button"
            className="hml-admin-primary"
            disabled={!preview || working}
            onClick={() => void importIt()}
          >
            {activate ? 'Import and activate' : 'Import'}
          </button>
        </p>
      </form>
      {preview && (
        <div
          className="hml-admin-promotion-preview"
          role="region"
          aria-label="Preview"
        >
          <p>
            Version {preview.bundle.version} of {key}, signed by{' '}
            <strong>{preview.bundle.signer}</strong>, made by{' '}
            {preview.bundle.created_by} on{' '}
            {formatTime(preview.bundle.created_at)}
            {preview.bundle.note ? ` (“${preview.bundle.note}”)` : ''}:{' '}
            {preview.bundle.datasets} datasets, {preview.bundle.scenarios}{' '}
            scenarios.{' '}
            {preview.project_exists
              ? ''
              : `There is no project ${key} here: activating creates it, owned by you.`}
            {preview.stored ? ' This version is stored here already.' : ''}
          </p>
          <Changes changes={preview.changes} label="What it changes" />
        </div>
      )}
      <Refusal text={failure} />
      <Said text={said} />
    </section>
  );
}

// -- versions ------------------------------------------------------------------------------------

/** The confirmation of an activation, with what it would change against what is live. */
function ConfirmActivation(props: {
  client: HimaliaClient;
  bundle: DescribeBundle;
  working: boolean;
  onActivate: () => void;
  onCancel: () => void;
}): React.ReactElement {
  const { client, bundle, working, onActivate, onCancel } = props;
  const [preview, setPreview] = React.useState<BundlePreview | null>(null);
  const [failure, setFailure] = React.useState('');

  React.useEffect(() => {
    let live = true;
    previewActivation(client, bundle).then(
      found => live && setPreview(found),
      error => live && setFailure(refusalText(error))
    );
    return () => {
      live = false;
    };
  }, [client, bundle]);

  return (
    <div
      role="dialog"
      aria-label={`Activate version ${bundle.version}`}
      className="hml-admin-promotion-preview"
    >
      <p>
        Make version {bundle.version} the live definitions of {bundle.project}?
        Its datasets, checks, scenarios and variables replace the live ones in
        one transaction; what it lacks is removed with its history.
      </p>
      {failure ? (
        <Refusal text={`It would be refused: ${failure}`} />
      ) : preview === null ? (
        <p>Comparing it with what is live…</p>
      ) : (
        <Changes changes={preview.changes} label="What activating it changes" />
      )}
      <button
        type="button"
        className="hml-admin-danger"
        disabled={working}
        onClick={onActivate}
      >
        Activate version {bundle.version}
      </button>{' '}
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}

function Versions(props: {
  client: HimaliaClient;
  projects: string[];
  project: string;
  onProject: (key: string) => void;
  generation: number;
}): React.ReactElement {
  const { client, projects, project, onProject, generation } = props;
  const [bundles, setBundles] = React.useState<DescribeBundle[] | null>(null);
  const [confirming, setConfirming] = React.useState<number | null>(null);
  const [result, setResult] = React.useState<BundlePreview | null>(null);
  const [failure, setFailure] = React.useState('');
  const [working, setWorking] = React.useState(false);
  const [reload, setReload] = React.useState(0);

  React.useEffect(() => {
    if (!project) {
      setBundles(null);
      return;
    }
    let live = true;
    listBundles(client, project).then(
      found => {
        if (live) {
          setBundles(found);
          setFailure('');
        }
      },
      error => {
        if (live) {
          setBundles(null);
          setFailure(refusalText(error));
        }
      }
    );
    return () => {
      live = false;
    };
  }, [client, project, generation, reload]);

  const activate = async (version: number) => {
    setWorking(true);
    setFailure('');
    try {
      setResult(await activateVersion(client, project, version));
      setConfirming(null);
      setReload(value => value + 1);
    } catch (error) {
      setFailure(refusalText(error));
    } finally {
      setWorking(false);
    }
  };

  return (
    <section aria-label="Versions">
      <h3>Versions</h3>
      <p>
        Every imported or created version stays stored; activating an earlier
        one rolls back. Datasets, checks and scenarios it lacks are removed.
      </p>
      <label>
        Project{' '}
        <select
          name="versions_project"
          value={project}
          onChange={event => {
            onProject(event.target.value);
            setConfirming(null);
            setResult(null);
          }}
        >
          <option value="">—</option>
          {projects.map(key => (
            <option key={key} value={key}>
              {key}
            </option>
          ))}
        </select>
      </label>
      <Refusal text={failure} />
      {result && (
        <div role="status" className="hml-admin-said">
          Version {result.bundle.version} of {project} is live.
          <Changes changes={result.changes} label="What changed" />
        </div>
      )}
      {bundles &&
        (bundles.length === 0 ? (
          <p>{project} has no stored version.</p>
        ) : (
          <table
            className="hml-admin-promotion-table"
            aria-label={`Versions of ${project}`}
          >
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Note</th>
                <th scope="col">Origin</th>
                <th scope="col">Signed by</th>
                <th scope="col">Made</th>
                <th scope="col">Contents</th>
                <th scope="col">Connections</th>
                <th scope="col" />
              </tr>
            </thead>
            <tbody>
              {bundles.map(bundle => (
                <React.Fragment key={bundle.version}>
                  <tr
                    data-version={bundle.version}
                    data-active={bundle.active}
                    className={
                      bundle.active ? 'hml-admin-promotion-active' : undefined
                    }
                  >
                    <td>
                      v{bundle.version}
                      {bundle.active && <strong> (active)</strong>}
                    </td>
                    <td>{bundle.note || '—'}</td>
                    <td>{bundle.origin}</td>
                    <td>{bundle.signer}</td>
                    <td>
                      {formatTime(bundle.created_at)} by {bundle.created_by}
                    </td>
                    <td>
                      {bundle.datasets} datasets, {bundle.scenarios} scenarios
                    </td>
                    <td>
                      {Object.entries(bundle.connection_map)
                        .map(([from, to]) => `${from} → ${to}`)
                        .join(', ') || '—'}
                    </td>
                    <td>
                      <button
                        type="button"
                        onClick={() => {
                          setConfirming(bundle.version);
                          setResult(null);
                        }}
                      >
                        {bundle.active ? 'Activate again…' : 'Activate…'}
                      </button>
                    </td>
                  </tr>
                  {confirming === bundle.version && (
                    <tr>
                      <td colSpan={8}>
                        <ConfirmActivation
                          client={client}
                          bundle={bundle}
                          working={working}
                          onActivate={() => void activate(bundle.version)}
                          onCancel={() => setConfirming(null)}
                        />
                      </td>
                    </tr>
                  )}
                </React.Fragment>
              ))}
            </tbody>
          </table>
        ))}
    </section>
  );
}

export function PromotionPage(props: IAdminPageProps): React.ReactElement {
  const { client } = props;
  const [projects, setProjects] = React.useState<string[]>([]);
  const [connections, setConnections] = React.useState<DescribeConnection[]>(
    []
  );
  const [failure, setFailure] = React.useState('');
  const [project, setProject] = React.useState('');
  const [generation, setGeneration] = React.useState(0);

  React.useEffect(() => {
    listProjects(client).then(
      page => setProjects(page.items.map(item => item.key)),
      error => setFailure(refusalText(error))
    );
    listConnections(client).then(setConnections, error =>
      setFailure(refusalText(error))
    );
  }, [client, generation]);

  const imported = (key: string) => {
    setProject(key);
    setGeneration(value => value + 1);
  };

  return (
    <div className="hml-admin-promotion">
      <h2>Promotion</h2>
      <p>
        A project&apos;s definitions travel from a design instance to production
        as a signed bundle: set this instance&apos;s variables, trust the design
        instance&apos;s key, import its bundle, and roll back to an earlier
        version when needed.
      </p>
      <Refusal text={failure} />
      <InstanceVariables client={client} />
      <BundleKeys client={client} />
      <ImportBundle
        client={client}
        projects={projects}
        connections={connections}
        onImported={imported}
      />
      <Versions
        client={client}
        projects={projects}
        project={project}
        onProject={setProject}
        generation={generation}
      />
    </div>
  );
}

export const PROMOTION_PAGE: IAdminPage = {
  id: 'promotion',
  title: 'Promotion',
  permissions: ['admin'],
  component: PromotionPage
};
