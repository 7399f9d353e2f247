/**
 * The wire types of the Himalia REST API, named as the server names them.
 *
 * `schema.d.ts` is generated from the server's OpenAPI document (`npm run api-types`), so these
 * aliases cannot drift from the Python models they mirror.
 */
import type { components } from './schema';

type Schemas = components['schemas'];

export type Page<T> = {
  items: T[];
  total: number;
  limit: number;
  offset: number;
};

export type DescribeMe = Schemas['DescribeMe'];
export type DescribeProject = Schemas['DescribeProject'];
export type CurrentProject = Schemas['CurrentProject'];
export type CreateProject = Schemas['CreateProject'];
export type DescribeGrant = Schemas['DescribeGrant'];
export type SetGrant = Schemas['SetGrant'];
export type DescribePreset = Schemas['DescribePreset'];
export type DescribeBundle = Schemas['DescribeBundle'];
export type CreateBundle = Schemas['CreateBundle'];
export type ProjectPermission = Schemas['ProjectPermission'];
export type DescribeGroup = Schemas['DescribeGroup'];
export type GlobalPermission = Schemas['GlobalPermission'];
export type DescribeConnection = Schemas['DescribeConnection'];
export type ConnectionTestResult = Schemas['ConnectionTestResult'];
export type DescribeDataset = Schemas['DescribeDataset'];
export type CreateDataset = Schemas['CreateDataset'];
export type DescribeMetricValue = Schemas['DescribeMetricValue'];
export type ComputedMetrics = Schemas['ComputedMetrics'];
export type DescribeCheck = Schemas['DescribeCheck'];
export type DescribeCheckResult = Schemas['DescribeCheckResult'];
export type FailingRows = Schemas['FailingRows'];
export type RowCondition = Schemas['RowCondition'];
export type CheckRun = Schemas['CheckRun'];
export type ProjectStorage = Schemas['ProjectStorage'];
export type CheckOutcome = DescribeCheckResult['outcome'];
export type DescribeScenario = Schemas['DescribeScenario'];
export type SaveScenario = Schemas['SaveScenario'];
export type PreviewFiles = Schemas['PreviewFiles'];
export type FilesPreview = Schemas['FilesPreview'];
export type ScenarioParameters = Schemas['ScenarioParameters'];
export type NotebookParameter = Schemas['NotebookParameter'];
export type DescribeRun = Schemas['DescribeRun'];
export type RunComparison = Schemas['RunComparison'];
export type NotebookDiff = Schemas['NotebookDiff'];
export type DescribeStep = Schemas['DescribeStep'];
export type RunState = DescribeRun['state'];
export type RunRequest = Schemas['RunRequest'];
export type Variables = Schemas['Variables'];
export type Board = Schemas['Board'];
export type BoardScenario = Schemas['BoardScenario'];
export type BoardFire = Schemas['BoardFire'];
export type BoardStatus = Schemas['BoardStatus'];
export type MissedReason = Schemas['MissedReason'];
export type DeadlineAlertView = Schemas['DeadlineAlertView'];
export type StaleDataset = Schemas['StaleDataset'];
