/**
 * A notebook of two runs drawn by nbdime's own diff view (sources, outputs and metadata, side by
 * side), from the server's nbdime diff (`…/compare/{b}/notebook?path=`), inside the comparison tab.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type * as nbformat from '@jupyterlab/nbformat';
import { Widget } from '@lumino/widgets';
import { NotebookDiffModel } from 'nbdime/lib/diff/model';
import { NotebookDiffWidget } from 'nbdime/lib/diff/widget';
import type { IDiffEntry } from 'nbdime/lib/diff/diffentries';
import React, { useEffect, useRef, useState } from 'react';

import { ErrorNotice, Loading } from '../components/common';
import { errorText } from '../errors';
import { HimaliaClient } from '../api';

export function NbdimeDiff(props: {
  client: HimaliaClient;
  rendermime: IRenderMimeRegistry;
  project: string;
  scenario: string;
  first: number;
  second: number;
  path: string;
}): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let widget: NotebookDiffWidget | null = null;
    let gone = false;
    props.client
      .compareNotebook(
        props.project,
        props.scenario,
        props.first,
        props.second,
        props.path
      )
      .then(async answer => {
        if (gone || !host.current) {
          return;
        }
        const model = new NotebookDiffModel(
          answer.base as unknown as nbformat.INotebookContent,
          answer.diff as unknown as IDiffEntry[]
        );
        widget = new NotebookDiffWidget({
          model,
          rendermime: props.rendermime
        });
        widget.addClass('hml-nbdime');
        Widget.attach(widget, host.current);
        await widget.init();
        setReady(true);
      })
      .catch(failure => setError(errorText(failure)));
    return () => {
      gone = true;
      widget?.dispose();
    };
  }, [props.project, props.scenario, props.first, props.second, props.path]);
  return (
    <div className="hml-nbdime-host" data-path={props.path}>
      <ErrorNotice error={error} />
      {!ready && !error && <Loading />}
      <div ref={host} />
    </div>
  );
}
