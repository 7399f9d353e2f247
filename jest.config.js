/**
 * Unit tests of the extension's logic (parsing, formatting, scales, validation): pure modules
 * run by ts-jest in jsdom-free Node. What a person clicks is tested end to end in Chromium
 * (tests/ui/).
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/jupyter_ext/src'],
  testRegex: '__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.tsx?$': [
      'ts-jest',
      { tsconfig: { module: 'commonjs', jsx: 'react', esModuleInterop: true } }
    ]
  }
};
