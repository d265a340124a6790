import './query.js';
import './mutation.js';
import './subscription.js';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../schema/builder.js';

/** The executable schema: every type and operation of the service. */
export const schema = builder.toSchema();

/** The SDL committed as schema.graphql, sorted so that diffs stay small. */
export const printedSchema = () => `${printSchema(lexicographicSortSchema(schema))}\n`;
