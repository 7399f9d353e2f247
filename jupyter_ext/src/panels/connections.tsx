// Placeholder until its owner writes it (not committed in this state).
import React from 'react';

import { ISectionProps, Section } from './section';

export class ConnectionsSection extends Section {
  constructor(services: ConstructorParameters<typeof Section>[0]) {
    super(services, { id: 'himalia-connections', label: 'Connections' });
  }

  protected renderView(props: ISectionProps): JSX.Element {
    return <div>{props.visible}</div>;
  }
}
