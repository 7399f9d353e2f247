// Placeholder until its owner writes it (not committed in this state).
import { IHimaliaServices } from './services';

export function registerArtifactCommands(services: IHimaliaServices): void {
  void services;
}
