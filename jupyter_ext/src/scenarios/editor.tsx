/**
 * A scenario's YAML in a main-area tab, in the lab's own code editor (CodeMirror through
 * `IEditorServices`), saved through the same API as `himalia scenario apply`.
 *
 * The server keeps a scenario's parsed definition, not the text it was saved from: the editor
 * opens the YAML the server renders from it (`…/export`, comments of the original file gone).
 * Saving sends the text as typed, with the content of the notebooks its saved steps run, read
 * from the lab's files, so they are snapshotted again (a notebook the lab cannot read, or one
 * a new step names, is read by the server from its own notebook folder). A refusal is shown
 * above the text, which is kept; one that names a line selects it.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import {
  CodeEditor,
  CodeEditorWrapper,
  IEditorServices
} from '@jupyterlab/codeeditor';
import { Button, ReactWidget } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Message } from '@lumino/messaging';
import { Panel } from '@lumino/widgets';
import React from 'react';

import { ApiError, HimaliaClient } from '../api';
import { errorText } from '../errors';
import { himaliaIcon } from '../icons';
import { CommandIDs, IHimaliaServices } from '../services';
import type { DescribeScenario } from '../types';
import { IEditorRefusal, locateRefusal, notebookPaths } from './editorrefusal';
import { scenarioEvents } from './events';

interface IEditorState {
  busy: 'loading' | 'saving' | null;
  refusal: IEditorRefusal | null;
  /** What the last load or save did, in words. */
  status: string;
}

/** The bar above the text: Save, Revert, and what happened. */
class EditorBar extends ReactWidget {
  constructor(private readonly editor: ScenarioEditor) {
    super();
    this.addClass('hml-editor-bar');
  }

  protected render(): JSX.Element {
    const { busy, refusal, status } = this.editor.state;
    return (
      <>
        <div className="hml-buttons">
          <Button
            small
            className="jp-mod-styled jp-mod-accept"
            disabled={busy !== null}
            title="Save this YAML as the scenario's next revision"
            onClick={() => void this.editor.save()}
          >
            {busy === 'saving' ? 'Saving…' : 'Save'}
          </Button>
          <Button
            small
            className="jp-mod-styled"
            disabled={busy !== null}
            title="Read the saved scenario again, dropping these changes"
            onClick={() => void this.editor.revert()}
          >
            Revert
          </Button>
          <span className="hml-help" role="status">
            {busy === 'loading' ? 'Loading…' : status}
          </span>
        </div>
        {refusal && (
          <div className="hml-error hml-editor-refusal" role="alert">
            {refusal.line !== null && (
              <button
                type="button"
                className="hml-link hml-editor-line"
                title="Select this line"
                onClick={() => this.editor.selectLine(refusal.line as number)}
              >
                Line {refusal.line}
              </button>
            )}
            <span className="hml-editor-message">{refusal.message}</span>
          </div>
        )}
      </>
    );
  }
}

export class ScenarioEditor extends Panel {
  constructor(
    private readonly client: HimaliaClient,
    private readonly app: JupyterFrontEnd,
    readonly project: string,
    readonly scenarioId: string,
    editorServices: IEditorServices
  ) {
    super();
    this.addClass('hml-scenario-editor');
    this.model = new CodeEditor.Model({
      mimeType: editorServices.mimeTypeService.getMimeTypeByFilePath(
        `${scenarioId}.yaml`
      )
    });
    this.text = new CodeEditorWrapper({
      factory: editorServices.factoryService.newDocumentEditor,
      model: this.model,
      editorOptions: { config: { lineNumbers: true } }
    });
    this.text.addClass('hml-editor-text');
    this.bar = new EditorBar(this);
    this.addWidget(this.bar);
    this.addWidget(this.text);
    this.model.sharedModel.changed.connect(() => {
      this.dirtyChanged(this.model.sharedModel.getSource() !== this.saved);
    });
  }

  state: IEditorState = { busy: null, refusal: null, status: '' };
  /** Whether the text differs from what was last loaded or saved. */
  dirty = false;
  /** Told when `dirty` changes (the tab's title shows it). */
  onDirty: (dirty: boolean) => void = () => undefined;

  /** Read the scenario and its YAML from the server, replacing the text. */
  async load(): Promise<void> {
    this.setState({ busy: 'loading', refusal: null });
    try {
      const [described, yaml] = await Promise.all([
        this.client.scenario(this.project, this.scenarioId),
        this.client.scenarioYaml(this.project, this.scenarioId)
      ]);
      this.described = described;
      this.saved = yaml;
      this.model.sharedModel.setSource(yaml);
      this.setState({
        busy: null,
        status: `Revision ${described.revision}, saved by ${described.updated_by}.`
      });
    } catch (error) {
      this.setState({
        busy: null,
        refusal: { line: null, message: errorText(error) }
      });
    }
  }

  async save(): Promise<DescribeScenario | null> {
    const yaml = this.model.sharedModel.getSource();
    this.setState({ busy: 'saving', refusal: null });
    try {
      const saved = await this.client.saveScenario(
        this.project,
        this.scenarioId,
        { yaml, notebooks: await this.notebooks() }
      );
      this.described = saved;
      this.saved = yaml;
      this.dirtyChanged(false);
      this.setState({
        busy: null,
        status: `Saved as revision ${saved.revision}.`
      });
      scenarioEvents.saved.emit({ project: saved.project, id: saved.id });
      return saved;
    } catch (error) {
      const message = errorText(error);
      const refusal =
        error instanceof ApiError
          ? locateRefusal(message)
          : { line: null, message };
      this.setState({ busy: null, refusal, status: 'Not saved.' });
      if (refusal.line !== null) {
        this.selectLine(refusal.line);
      }
      return null;
    }
  }

  async revert(): Promise<void> {
    if (this.dirty) {
      const answer = await showDialog({
        title: `Revert ${this.scenarioId}?`,
        body: 'Your changes to this YAML are dropped and the saved scenario is read again.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revert' })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    await this.load();
  }

  /** Put the cursor on a 1-based line and select it. */
  selectLine(line: number): void {
    const editor = this.text.editor;
    const index = Math.min(Math.max(line - 1, 0), editor.lineCount - 1);
    const length = editor.getLine(index)?.length ?? 0;
    editor.setSelection({
      start: { line: index, column: 0 },
      end: { line: index, column: length }
    });
    editor.revealPosition({ line: index, column: 0 });
    editor.focus();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    super.dispose();
    this.model.dispose();
  }

  protected onActivateRequest(message: Message): void {
    super.onActivateRequest(message);
    this.text.editor.focus();
  }

  /** The lab's copies of the notebooks the saved steps run; those it cannot read are left to the server. */
  private async notebooks(): Promise<Record<string, Record<string, unknown>>> {
    const paths = notebookPaths(this.described?.definition.steps ?? []);
    const contents = this.app.serviceManager.contents;
    const found: Record<string, Record<string, unknown>> = {};
    await Promise.all(
      paths.map(async path => {
        try {
          const file = await contents.get(path, {
            type: 'notebook',
            content: true
          });
          found[path] = file.content as Record<string, unknown>;
        } catch {
          // not in the lab's files: the server reads its own copy or names the step
        }
      })
    );
    return found;
  }

  private setState(patch: Partial<IEditorState>): void {
    this.state = { ...this.state, ...patch };
    this.bar.update();
  }

  private dirtyChanged(dirty: boolean): void {
    if (dirty !== this.dirty) {
      this.dirty = dirty;
      this.onDirty(dirty);
    }
  }

  private readonly model: CodeEditor.Model;
  private readonly text: CodeEditorWrapper;
  private readonly bar: EditorBar;
  private described: DescribeScenario | null = null;
  private saved = '';
}

/** The tab: asks before closing over unsaved changes. */
class ScenarioEditorTab extends MainAreaWidget<ScenarioEditor> {
  protected onCloseRequest(message: Message): void {
    if (!this.content.dirty) {
      super.onCloseRequest(message);
      return;
    }
    void showDialog({
      title: `Close ${this.content.scenarioId} without saving?`,
      body: 'Your changes to this YAML are not saved.',
      buttons: [
        Dialog.cancelButton(),
        Dialog.warnButton({ label: 'Discard changes' })
      ]
    }).then(answer => {
      if (answer.button.accept) {
        this.dispose();
      }
    });
  }
}

function editorArgs(args: ReadonlyPartialJSONObject): {
  project: string;
  scenario: string;
} {
  const { project, scenario } = args as Record<string, unknown>;
  if (typeof project !== 'string' || typeof scenario !== 'string') {
    throw new Error('Editing a scenario needs {project, scenario}.');
  }
  return { project, scenario };
}

/** "Edit scenario YAML" ({project, scenario}) and the editor's Save on Accel-S. */
export function registerScenarioEditor(
  services: IHimaliaServices,
  editorServices: IEditorServices
): void {
  const { app, model } = services;
  const open = new Map<string, ScenarioEditorTab>();

  app.commands.addCommand(CommandIDs.editScenario, {
    label: 'Edit Scenario YAML',
    caption: "A scenario's YAML in an editor tab, saved as its next revision",
    icon: himaliaIcon,
    execute: async args => {
      const { project, scenario } = editorArgs(args);
      const id = `himalia-scenario-editor-${project}-${scenario}`;
      const existing = open.get(id);
      if (existing && !existing.isDisposed) {
        app.shell.activateById(existing.id);
        return existing;
      }
      const editor = new ScenarioEditor(
        model.client,
        app,
        project,
        scenario,
        editorServices
      );
      const tab = new ScenarioEditorTab({ content: editor });
      tab.id = id;
      tab.addClass('hml-scenario-editor-tab');
      tab.title.label = `${scenario}.yaml`;
      tab.title.caption = `Scenario ${project} / ${scenario}`;
      tab.title.icon = himaliaIcon;
      tab.title.closable = true;
      editor.onDirty = dirty => {
        tab.title.className = dirty ? 'jp-mod-dirty' : '';
      };
      open.set(id, tab);
      tab.disposed.connect(() => open.delete(id));
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
      await editor.load();
      return tab;
    }
  });

  app.commands.addCommand(CommandIDs.saveScenarioYaml, {
    label: 'Save Scenario YAML',
    execute: async () => {
      const current = app.shell.currentWidget;
      if (current instanceof ScenarioEditorTab) {
        await current.content.save();
      }
    }
  });
  app.commands.addKeyBinding({
    command: CommandIDs.saveScenarioYaml,
    keys: ['Accel S'],
    selector: '.hml-scenario-editor'
  });
}
