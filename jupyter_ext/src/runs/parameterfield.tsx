/**
 * The typed input of one notebook parameter, shared by the "Run now" form and the "Schedule this
 * notebook…" dialog's form (scenarios/scheduleform.tsx).
 */
import React from 'react';

import { IParameter, baseType, inputKind, placeholderOf } from '../parameters';

/**
 * The input of one notebook parameter: a number or text field, a True/False choice, or JSON for
 * lists and dicts; empty stands for the placeholder (the step's value or the default).
 */
export function ParameterField(props: {
  parameter: IParameter;
  text: string;
  onChange: (text: string) => void;
  error?: string | null;
  /** The input's `name` (the parameter's name by default). */
  inputName?: string;
  note?: string;
}): JSX.Element {
  const { parameter, text, onChange, error } = props;
  const kind = inputKind(parameter.type);
  const placeholder = placeholderOf(parameter);
  const common = {
    name: props.inputName ?? parameter.name,
    'aria-label': parameter.name,
    'aria-invalid': error ? true : undefined,
    className: `jp-mod-styled${error ? ' jp-mod-error' : ''}`,
    title: parameter.help || undefined
  };
  let input: JSX.Element;
  if (kind === 'bool') {
    input = (
      <select
        {...common}
        value={text}
        onChange={event => onChange(event.target.value)}
      >
        <option value="">{`${placeholder} (unchanged)`}</option>
        <option value="True">True</option>
        <option value="False">False</option>
        {baseType(parameter.type).optional && (
          <option value="None">None</option>
        )}
      </select>
    );
  } else if (kind === 'json') {
    input = (
      <textarea
        {...common}
        rows={2}
        spellCheck={false}
        placeholder={placeholder}
        value={text}
        onChange={event => onChange(event.target.value)}
      />
    );
  } else {
    input = (
      <input
        {...common}
        type="text"
        inputMode={
          kind === 'int' ? 'numeric' : kind === 'float' ? 'decimal' : undefined
        }
        spellCheck={false}
        autoComplete="off"
        placeholder={placeholder}
        value={text}
        onChange={event => onChange(event.target.value)}
      />
    );
  }
  const defaultShown =
    parameter.value !== null && parameter.value !== undefined
      ? `default ${parameter.default}`
      : '';
  return (
    <label className="hml-parameter" data-parameter={parameter.name}>
      <span className="hml-parameter-head">
        <span className="hml-parameter-name">{parameter.name}</span>
        <span className="hml-parameter-type">{parameter.type}</span>
      </span>
      {input}
      {(parameter.help || defaultShown || props.note) && (
        <span className="hml-help">
          {[parameter.help, defaultShown, props.note]
            .filter(Boolean)
            .join(' · ')}
        </span>
      )}
      {error && <span className="hml-field-error">{error}</span>}
    </label>
  );
}
