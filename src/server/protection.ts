import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import {
  type GraphQLError,
  NoSchemaIntrospectionCustomRule,
  type ValidationContext,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Principal } from '../auth/principal.js';

/** The header a browser cannot send cross-site without a preflight. */
export const CSRF_HEADER = 'x-graphql-yoga-csrf';

export interface ProtectionOptions {
  readonly development: boolean;
  /** The caller, from the context validation sees (its `principal` unless told otherwise). */
  readonly principalOf?: (context: { principal?: Principal }) => Principal | undefined;
}

/**
 * What one request may cost, checked before anything runs (graphql-armor):
 * depth, aliases, tokens, directives and cost; field suggestions hidden
 * outside development; introspection for admins only outside development;
 * CSRF prevention for browser requests that skip the preflight.
 */
export function protectionPlugins({
  development,
  principalOf = (context) => context.principal,
}: ProtectionOptions): Plugin[] {
  // Armor throws its rejections out of validation by default, which loses the
  // validation error code; reported instead, they are ordinary validation errors.
  const report = {
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) => context?.reportError(error),
    ],
  };
  const armor = new EnvelopArmor({
    maxDepth: { n: 10, ignoreIntrospection: true, ...report },
    maxAliases: { n: 30, ...report },
    // Counted while parsing, where there is no validation context to report
    // to: thrown, it is a parse error (GRAPHQL_PARSE_FAILED).
    maxTokens: { n: 2_000 },
    maxDirectives: { n: 20, ...report },
    costLimit: { maxCost: 5_000, ignoreIntrospection: true, ...report },
    blockFieldSuggestion: { enabled: !development },
  });
  return [
    ...(armor.protect().plugins as Plugin[]),
    useCSRFPrevention({ requestHeaders: [CSRF_HEADER] }) as Plugin,
    adminOnlyIntrospection(development, principalOf),
  ];
}

/** Introspection is a map of the API: only admins get it, but anyone in development. */
function adminOnlyIntrospection(
  development: boolean,
  principalOf: NonNullable<ProtectionOptions['principalOf']>,
): Plugin<{ principal?: Principal }> {
  return {
    onValidate({ context, addValidationRule }) {
      if (!development && principalOf(context)?.role !== 'admin') {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      }
    },
  };
}
