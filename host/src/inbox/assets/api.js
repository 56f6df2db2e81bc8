// The agent API (/api/v1) with the agent's bearer token. Every failure
// becomes an ApiError carrying the API's own `error` text.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }
}

export class Api {
  constructor(token, brand = null) {
    this.token = token;
    this.brand = brand;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  async request(method, path, body) {
    let response;
    try {
      response = await fetch(`/api/v1${path}`, {
        method,
        headers: this.headers({
          Accept: 'application/json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(0, `the host cannot be reached (${e.message})`, null);
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message = data && typeof data.error === 'string'
        ? data.error
        : `${response.status} ${response.statusText || 'error'}`;
      throw new ApiError(response.status, message, data);
    }
    return data;
  }

  b(path) {
    return `/brands/${encodeURIComponent(this.brand)}${path}`;
  }

  me() { return this.request('GET', '/me'); }

  cases(filter = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) {
      if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, String(v));
    }
    const qs = q.toString();
    return this.request('GET', this.b(`/cases${qs ? `?${qs}` : ''}`));
  }

  detail(id) { return this.request('GET', this.b(`/cases/${id}`)); }
  claim(id) { return this.request('POST', this.b(`/cases/${id}/claim`), {}); }
  release(id) { return this.request('POST', this.b(`/cases/${id}/release`), {}); }
  close(id) { return this.request('POST', this.b(`/cases/${id}/close`), {}); }
  reopen(id) { return this.request('POST', this.b(`/cases/${id}/reopen`), {}); }
  note(id, text) { return this.request('POST', this.b(`/cases/${id}/notes`), { text }); }

  reply(id, text, isPrivate, idempotencyKey) {
    return this.request('POST', this.b(`/cases/${id}/reply`), {
      text,
      private: isPrivate,
      idempotency_key: idempotencyKey,
    });
  }

  escalate(id, team, question) {
    return this.request('POST', this.b(`/cases/${id}/escalate`), { team, question });
  }

  answerEscalation(id, answer) {
    return this.request('POST', this.b(`/cases/${id}/escalation/answer`), { answer });
  }

  retry(actionId) { return this.request('POST', this.b(`/actions/${actionId}/retry`), {}); }

  search(q) {
    return this.request('GET', this.b(`/search?${new URLSearchParams({ q })}`));
  }

  eventsUrl() { return `/api/v1${this.b('/events')}`; }
}
