/**
 * Data quality: the current project's datasets, each with the worst outcome of its checks;
 * opened, a dataset shows its details (details.tsx): checks, last metric values, the history of
 * one metric with the bounds of its range checks, and the buttons to compute and check now.
 *
 * Outcomes refresh every `listPollSeconds` while a dataset is open and the section is in view;
 * nothing polls while the section is collapsed. They are read again when a run of the project
 * ends (runs/events.ts). "New dataset" (write_content) defines one (newdatasetform.tsx).
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { PageState, Pager } from '../components/common';
import { ISectionProps, NoProject, Section } from '../components/section';
import { useAsync } from '../hooks/useAsync';
import { usePagedList } from '../hooks/usePagedList';
import { HimaliaModel } from '../model';
import { IRunEnded, RunEvents, runEvents } from '../runs/events';
import type { DescribeDataset, DescribeProject } from '../types';
import { DatasetDetails } from './details';
import { NewDatasetForm } from './newdatasetform';
import { CheckSummary } from './tables';
import { useRefresh } from '../hooks/useRefresh';
import { CommandIDs } from '../services';

export class DataQualitySection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-dataquality', label: 'Data quality' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    const project = props.model.project;
    if (!project) {
      return (
        <div className="hml-view hml-dq">
          <NoProject />
        </div>
      );
    }
    // Keyed by project: another project starts on its first page, nothing open.
    return <DataQualityView key={project.key} {...props} project={project} />;
  }
}

function DataQualityView(
  props: ISectionProps & { project: DescribeProject }
): JSX.Element {
  const { model, project, visible } = props;
  const key = project.key;
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [refresh, setRefresh] = useState(0);
  const [creating, setCreating] = useState(false);
  const datasets = usePagedList(
    query => model.client.datasets(key, query),
    [key],
    model.settings.pageSize
  );

  useEffect(() => {
    // A run of this project ended: its checks may have new outcomes.
    const onEnded = (_: RunEvents, ended: IRunEnded) => {
      if (ended.project === key) {
        setRefresh(count => count + 1);
      }
    };
    runEvents.ended.connect(onEnded);
    return () => {
      runEvents.ended.disconnect(onEnded);
    };
  }, [key]);

  const toggle = (name: string) => {
    const next = new Set(open);
    if (!next.delete(name)) {
      next.add(name);
    }
    setOpen(next);
  };

  return (
    <div className="hml-view hml-dq">
      <div className="hml-toolbar">
        <span className="hml-dq-heading">
          Datasets of <span className="hml-key">{key}</span>
        </span>
        <Button
          small
          minimal
          title="Read the datasets and their outcomes again"
          onClick={() => {
            void datasets.reload();
            setRefresh(refresh + 1);
          }}
        >
          Refresh
        </Button>
        {model.can('write_content') && !creating && (
          <Button
            small
            minimal
            title={`Define a dataset of ${key} on a connection you may use`}
            onClick={() => setCreating(true)}
          >
            New dataset
          </Button>
        )}
      </div>
      {creating && (
        <NewDatasetForm
          model={model}
          projectKey={key}
          onCreated={created => {
            setCreating(false);
            setOpen(new Set([...open, created.name]));
            void datasets.reload();
          }}
          onCancel={() => setCreating(false)}
        />
      )}
      <PageState
        list={datasets}
        empty={
          datasets.offset > 0
            ? 'No dataset on this page.'
            : 'This project has no dataset yet.'
        }
      />
      {datasets.items.length > 0 && (
        <ul className="hml-list" aria-label={`Datasets of ${key}`}>
          {datasets.items.map(dataset => (
            <DatasetRow
              key={dataset.name}
              model={model}
              projectKey={key}
              dataset={dataset}
              expanded={open.has(dataset.name)}
              onToggle={() => toggle(dataset.name)}
              visible={visible}
              refresh={refresh}
              rendermime={props.services.rendermime}
              onOpenFailingRows={check =>
                void props.services.app.commands.execute(
                  CommandIDs.openFailingRows,
                  { project: key, dataset: dataset.name, check }
                )
              }
            />
          ))}
        </ul>
      )}
      <Pager list={datasets} />
    </div>
  );
}

function DatasetRow(props: {
  model: HimaliaModel;
  projectKey: string;
  dataset: DescribeDataset;
  expanded: boolean;
  onToggle: () => void;
  visible: boolean;
  refresh: number;
  rendermime: IRenderMimeRegistry | null;
  onOpenFailingRows: (check: string) => void;
}): JSX.Element {
  const { model, projectKey, dataset, expanded } = props;
  const checks = useAsync(
    () => model.client.checks(projectKey, dataset.name),
    [projectKey, dataset.name]
  );
  useRefresh(props.refresh, checks.reload);
  const where =
    dataset.kind === 'files'
      ? `${dataset.connection}: ${dataset.path ?? ''}`
      : dataset.kind === 'query'
        ? `${dataset.connection}: query`
        : `${dataset.connection}: ${dataset.db_schema ? dataset.db_schema + '.' : ''}${dataset.table ?? ''}`;
  return (
    <li
      className={`hml-row hml-dq-dataset${expanded ? ' hml-dq-open' : ''}`}
      data-dataset={dataset.name}
    >
      <button
        className="hml-row-main"
        aria-expanded={expanded}
        onClick={props.onToggle}
        title={dataset.description ? `${dataset.description}\n${where}` : where}
      >
        <span className="hml-dq-caret" aria-hidden="true">
          {expanded ? '▾' : '▸'}
        </span>
        <span className="hml-name hml-dq-name">{dataset.name}</span>
        <span className="hml-dq-outcome">
          <CheckSummary checks={checks} />
        </span>
      </button>
      {expanded && (
        <DatasetDetails
          model={model}
          projectKey={projectKey}
          dataset={dataset}
          where={where}
          checks={checks}
          visible={props.visible}
          refresh={props.refresh}
          rendermime={props.rendermime}
          onOpenFailingRows={props.onOpenFailingRows}
        />
      )}
    </li>
  );
}
