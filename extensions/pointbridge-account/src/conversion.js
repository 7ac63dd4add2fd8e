// The conversion form's states, shared by every view:
//   idle → processing → done | error
// One idempotency key per intended conversion: kept when the answer was lost (network error or
// 5xx: retrying must not convert twice), replaced after a definite answer or a new amount.

const DEFINITE = (status) => status >= 400 && status < 500;

export function createConversionFlow({ api, newKey }) {
  let state = { status: 'idle', points: null, key: null, result: null, error: null };
  const listeners = new Set();
  const set = (next) => {
    state = { ...state, ...next };
    listeners.forEach((listener) => listener(state));
  };

  return {
    get state() {
      return state;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    choose(points) {
      if (state.status === 'processing') return;
      if (points !== state.points) set({ points, key: null, error: null, status: 'idle' });
    },
    async submit() {
      if (state.status === 'processing' || !state.points) return state; // no double submission
      const key = state.key || newKey();
      set({ status: 'processing', key, error: null });
      const answer = await api.convert(state.points, key);
      if (answer.ok) {
        set({ status: 'done', result: answer.data.conversion, key: null });
      } else {
        set({ status: 'error', error: answer.error, key: DEFINITE(answer.status) ? null : key });
      }
      return state;
    },
  };
}

export function limits(balance, conversion) {
  const max = Math.floor(Math.min(balance, conversion.remaining_today) / conversion.unit) * conversion.unit;
  return { min: conversion.minimum, step: conversion.unit, max, canConvert: max >= conversion.minimum };
}
