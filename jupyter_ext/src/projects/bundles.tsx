/**
 * A project's bundles: its signed versions, newest last, the active one marked. Project
 * administrators record a new version and download any version's file, which a production
 * instance imports with `himalia bundle import`.
 */
import React, { useState } from 'react';

import { ActionButton, ErrorNotice } from '../components/common';
import { useAsync } from '../hooks/useAsync';
import { HimaliaModel } from '../model';
import type { DescribeBundle, DescribeProject } from '../types';

export function ProjectBundles(props: {
  model: HimaliaModel;
  project: DescribeProject;
}): JSX.Element {
  const { model, project } = props;
  const isProjectAdmin = project.my_permissions.includes('admin');
  const bundles = useAsync(
    () => model.client.bundles(project.key),
    [project.key]
  );
  const [note, setNote] = useState('');
  const [withGrants, setWithGrants] = useState(false);

  const create = async () => {
    await model.client.createBundle(project.key, {
      note: note.trim(),
      with_grants: withGrants
    });
    setNote('');
    await bundles.reload();
  };

  return (
    <section className="hml-bundles" aria-label="Bundles">
      <h4>Bundles</h4>
      <ErrorNotice error={bundles.error} />
      {bundles.value && bundles.value.length === 0 && (
        <p className="hml-empty">
          No bundle yet: a bundle records the project's datasets, checks,
          scenarios and variables as a signed version to promote.
        </p>
      )}
      {bundles.value && bundles.value.length > 0 && (
        <ul className="hml-list hml-bundle-list" aria-label="Bundle versions">
          {bundles.value.map(bundle => (
            <BundleRow
              key={bundle.version}
              bundle={bundle}
              downloadUrl={
                isProjectAdmin
                  ? model.client.bundleDownloadUrl(project.key, bundle.version)
                  : null
              }
            />
          ))}
        </ul>
      )}
      {isProjectAdmin && (
        <form
          className="hml-form hml-bundle-form"
          aria-label="Create a bundle"
          onSubmit={event => event.preventDefault()}
        >
          <input
            className="jp-mod-styled"
            aria-label="Bundle note"
            placeholder="what this version is (optional)"
            value={note}
            onChange={event => setNote(event.target.value)}
          />
          <label title="Carry the project's group grants, by group name">
            <input
              type="checkbox"
              checked={withGrants}
              onChange={event => setWithGrants(event.target.checked)}
            />
            with grants
          </label>
          <div className="hml-buttons">
            <ActionButton
              label="Create bundle"
              busyLabel="Creating…"
              accept
              onClick={create}
            />
          </div>
        </form>
      )}
    </section>
  );
}

/** One version, compact enough for the sidebar: number, note, who made it, what it holds. */
function BundleRow(props: {
  bundle: DescribeBundle;
  downloadUrl: string | null;
}): JSX.Element {
  const { bundle, downloadUrl } = props;
  const created = new Date(bundle.created_at).toLocaleString();
  return (
    <li className="hml-row hml-bundle" data-version={bundle.version}>
      <div className="hml-row-main">
        <span className="hml-name">v{bundle.version}</span>
        {bundle.active && <span className="hml-chip">active</span>}
        {bundle.origin === 'imported' && (
          <span className="hml-chip" title={`signed by ${bundle.signer}`}>
            imported
          </span>
        )}
        {bundle.note && <span className="hml-description">{bundle.note}</span>}
        <span className="hml-principal-type">
          {bundle.created_by}, {created}; {bundle.datasets} datasets,{' '}
          {bundle.scenarios} scenarios
        </span>
        {downloadUrl && (
          <a
            href={downloadUrl}
            download={`${bundle.project}-v${bundle.version}.himalia-bundle`}
            aria-label={`Download version ${bundle.version}`}
          >
            Download
          </a>
        )}
      </div>
    </li>
  );
}
