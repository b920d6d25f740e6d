// The server's own names and texts that the UI shows — audit event types,
// PAT scopes, password-rule advice — from GET /ui/api/vocabulary, loaded once
// before the first page is drawn, so the UI keeps no copies that drift.

import { api } from './api.js';

let loaded = { audit_types: [], scopes: [], password_violations: {} };

export async function loadVocabulary() {
  try {
    loaded = await api('/ui/api/vocabulary', { auth: 'public' });
  } catch {
    // Pages still work: lists are empty and advice falls back to the codes.
  }
}

export const auditTypes = () => loaded.audit_types;
export const scopes = () => loaded.scopes;
export const violationAdvice = (code) => loaded.password_violations[code];
