// WebAuthn glue: the server speaks the browser's JSON form of the options and
// credentials. Modern browsers convert with parse*OptionsFromJSON/toJSON; the
// base64url fallbacks cover browsers that lack them.

export function webauthnAvailable() {
  return typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function toBase64url(buffer) {
  if (!buffer) return undefined;
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Drops `null` members: the browser's parsers reject null where a list or dictionary belongs. */
const withoutNulls = (json) => JSON.parse(JSON.stringify(json, (key, value) => (value === null ? undefined : value)));

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

/**
 * Chromium refuses a registration (NotSupportedError, "Requested protection
 * policy is inconsistent…") that asks for the credProtect policy
 * userVerificationRequired while userVerification is not 'required';
 * webauthn-rs's security-key options do exactly that, with the policy not
 * enforced (kanidm/webauthn-rs#490). An unenforced policy may be left out —
 * the same as a key without credProtect — so the key can still be added.
 */
function withoutUnenforceableProtection(json) {
  const extensions = json.extensions || {};
  const verification = (json.authenticatorSelection || {}).userVerification;
  if (extensions.credentialProtectionPolicy !== 'userVerificationRequired'
    || extensions.enforceCredentialProtectionPolicy || verification === 'required') return json;
  const { credentialProtectionPolicy, enforceCredentialProtectionPolicy, ...rest } = extensions;
  return { ...json, extensions: rest };
}

export function creationOptions(options) {
  const json = withoutUnenforceableProtection(withoutNulls(options));
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

export function requestOptions(options) {
  const json = withoutNulls(options);
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

export function credentialJSON(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    if (typeof r.getTransports === 'function') response.transports = r.getTransports();
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    response.userHandle = toBase64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
    response,
  };
}

/** What to tell a person when the browser's ceremony fails. */
export function ceremonyError(error) {
  switch (error && error.name) {
    case 'NotAllowedError': return 'The security key request was cancelled or timed out.';
    case 'InvalidStateError': return 'This security key is already registered.';
    case 'SecurityError': return 'Security keys are not allowed on this address (check the server’s WebAuthn origin).';
    case 'NotSupportedError': return 'This browser or key does not support the requested options.';
    case 'AbortError': return 'The security key request was cancelled.';
    default: return 'The security key could not be used. Please try again.';
  }
}
