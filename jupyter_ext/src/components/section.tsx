/**
 * The base of every Himalia sidebar section: a React view over the shared model that knows
 * whether it is on screen, so that nothing polls while its section is collapsed.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import React from 'react';

import { HimaliaModel } from '../model';
import { IHimaliaServices } from '../services';

export interface ISectionProps {
  model: HimaliaModel;
  services: IHimaliaServices;
  /** Whether the section is expanded and in view. */
  visible: boolean;
}

export abstract class Section extends ReactWidget {
  constructor(
    protected readonly services: IHimaliaServices,
    options: { id: string; label: string }
  ) {
    super();
    this.model = services.model;
    this.id = options.id;
    this.title.label = options.label;
    this.addClass('hml-section');
  }

  protected readonly model: HimaliaModel;

  protected abstract renderView(props: ISectionProps): JSX.Element;

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._visibility}>
        {() => (
          <UseSignal signal={this.model.changed}>
            {() =>
              this.renderView({
                model: this.model,
                services: this.services,
                visible: this.isVisible
              })
            }
          </UseSignal>
        )}
      </UseSignal>
    );
  }

  protected onAfterShow(message: Message): void {
    super.onAfterShow(message);
    this._visibility.emit();
  }

  protected onAfterHide(message: Message): void {
    super.onAfterHide(message);
    this._visibility.emit();
  }

  private _visibility = new Signal<this, void>(this);
}

/** What the sections show when no project is chosen. */
export function NoProject(): JSX.Element {
  return (
    <div className="hml-empty">
      Choose a project in the Projects section first.
    </div>
  );
}
