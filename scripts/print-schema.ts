import { writeFileSync } from 'node:fs';
import { printedSchema } from '../src/resolvers/index.js';

// Committed so that a change to the public schema shows in review.
writeFileSync(new URL('../schema.graphql', import.meta.url), printedSchema());
console.log('wrote schema.graphql');
