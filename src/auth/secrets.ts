import type { Config } from '../config.js';
import { type AuthSettings, generateSecret } from './principal.js';

/** The settings for auth, with a random secret for each one left unset. */
export interface ResolvedSecrets {
  readonly settings: AuthSettings;
  /** The tokens made at start because none was configured: shown once to the operator. */
  readonly generated: { readonly adminToken?: string; readonly encoderToken?: string };
}

/**
 * Secure by default: a secret left unset is generated (and lives as long as
 * the process), never left empty.
 */
export function resolveSecrets(config: Config): ResolvedSecrets {
  const adminToken = config.adminToken ?? generateSecret();
  const encoderToken = config.encoderToken ?? generateSecret();
  return {
    settings: {
      enabled: config.authEnabled,
      adminToken,
      encoderToken,
      metricsToken: config.metricsToken,
      clientTokenSecret: config.clientTokenSecret ?? generateSecret(),
    },
    generated: {
      ...(config.adminToken === null ? { adminToken } : {}),
      ...(config.encoderToken === null ? { encoderToken } : {}),
    },
  };
}
