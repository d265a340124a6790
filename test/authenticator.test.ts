import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { Authenticator } from '../src/auth/principal.js';
import { eventually } from './fixtures.js';

const settings = {
  enabled: true,
  adminToken: 'admin-token-of-at-least-some-length',
  encoderToken: 'encoder-token-of-at-least-some-length',
  metricsToken: 'metrics-token-of-at-least-some-length',
  clientTokenSecret: 'a-client-token-secret-of-32-bytes-or-more',
};
const bearer = (token: string) => `Bearer ${token}`;

describe('Authenticator: roles by token', () => {
  it('knows the admin, the encoder and the scraper (METRICS_TOKEN) by their tokens', () => {
    const auth = new Authenticator(settings);
    expect(auth.authenticate(bearer(settings.adminToken))).toEqual({ role: 'admin' });
    expect(auth.authenticate(bearer(settings.encoderToken))).toEqual({ role: 'encoder' });
    expect(auth.authenticate(bearer(settings.metricsToken))).toEqual({ role: 'scraper' });
  });

  it('has no scraper without METRICS_TOKEN', async () => {
    const auth = new Authenticator({ ...settings, metricsToken: null });
    // Not one of the fixed tokens: checked as a player token, which it is not.
    expect(await auth.authenticate(bearer(settings.metricsToken))).toMatchObject({
      role: 'invalid',
    });
  });
});

describe('Authenticator: player tokens', () => {
  it('checks a player token once, then answers from what it verified', async () => {
    const auth = new Authenticator(settings);
    const token = await auth.issueClientToken('s1', 'p1', 60);
    const first = auth.authenticate(bearer(token));
    // The first time, the signature is checked (asynchronously).
    expect(first).toBeInstanceOf(Promise);
    const principal = await first;
    expect(principal).toMatchObject({ role: 'player', streamSessionId: 's1', sessionId: 'p1' });
    // After that, the same token is known at once, as the same principal.
    const second = auth.authenticate(bearer(token));
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toEqual(principal);
  });

  it('forgets a verified token when it expires', async () => {
    const auth = new Authenticator(settings);
    const token = await auth.issueClientToken('s1', 'p1', 1);
    const verified = await auth.authenticate(bearer(token));
    expect(verified).toMatchObject({ role: 'player' });
    // The expiry is on the real clock (jose's check and the cache read it); a little past
    // it, so that the cache's own rounding is past it too.
    const { expiresAt } = verified as { expiresAt: number };
    await eventually(() => Date.now() > expiresAt + 50);
    const later = auth.authenticate(bearer(token));
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toEqual({ role: 'invalid', reason: 'the token has expired' });
  });

  it('keeps nothing for a token it refused', async () => {
    const auth = new Authenticator(settings);
    const forged = await new SignJWT({ ssid: 's1' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('p1')
      .setExpirationTime('60s')
      .sign(new TextEncoder().encode('another-secret-of-32-bytes-or-more!!'));
    for (let i = 0; i < 2; i++) {
      const answer = auth.authenticate(bearer(forged));
      expect(answer).toBeInstanceOf(Promise);
      expect(await answer).toEqual({ role: 'invalid', reason: 'the token is not valid' });
    }
  });
});
