// Saved replies: the brand's (from the host) and a short list kept in this
// browser (localStorage), with {name}, {handle} and {agent} filled in when
// inserted.

const KEY = 'webcare.inbox.savedReplies';

const DEFAULTS = [
  { title: 'Greeting', text: 'Hi {name}, thanks for getting in touch! {agent} here, I am looking into it now.' },
  { title: 'Order number', text: 'Hi {name}, sorry to hear that. Could you send me your order number? – {agent}' },
  { title: 'Follow-up', text: 'Hi {name}, is there anything else I can help you with? – {agent}' },
];

export function loadReplies() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    if (Array.isArray(stored)) {
      return stored.filter((r) => r && typeof r.title === 'string' && typeof r.text === 'string');
    }
  } catch {
    // unreadable: start over
  }
  return DEFAULTS.map((r) => ({ ...r }));
}

export function storeReplies(replies) {
  localStorage.setItem(KEY, JSON.stringify(replies));
}

/** Fills {name}, {handle} and {agent}; other braces stay as they are. */
export function fillPlaceholders(text, values) {
  return text.replace(/\{(name|handle|agent)\}/g, (_, key) => values[key] ?? '');
}
