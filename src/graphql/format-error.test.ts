import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphQLError } from 'graphql';
import { createFormatError, UNEXPECTED_ERROR_MESSAGE } from './format-error.js';
import { NotFoundError } from '../errors/index.js';

const formatted = (message: string, code = 'INTERNAL_SERVER_ERROR') => ({ message, extensions: { code } });

describe('formatError', () => {
  it('keeps the code and details of catalogue errors', () => {
    const format = createFormatError({ development: false });
    const result = format(
      formatted('x'),
      new GraphQLError('x', { originalError: new NotFoundError('Addon', 'a') }),
    );
    assert.deepEqual(result.extensions, { entity: 'Addon', key: 'a', code: 'NOT_FOUND' });
    assert.equal(result.message, 'Addon "a" was not found.');
  });

  it('masks unknown errors outside development and reports them', () => {
    const seen: unknown[] = [];
    const format = createFormatError({ development: false, onUnexpected: (e) => seen.push(e) });
    const secret = new Error('connection to db://user:password@host failed');
    const result = format(
      formatted(secret.message),
      new GraphQLError(secret.message, { originalError: secret }),
    );
    assert.equal(result.message, UNEXPECTED_ERROR_MESSAGE);
    assert.deepEqual(result.extensions, { code: 'INTERNAL_SERVER_ERROR' });
    assert.equal(seen[0], secret);
  });

  it('shows unknown errors in development', () => {
    const format = createFormatError({ development: true });
    const error = new Error('details');
    assert.equal(
      format(formatted('details'), new GraphQLError('details', { originalError: error })).message,
      'details',
    );
  });
});
