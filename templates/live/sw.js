// The live page's service worker: keeps the page, the runtime and the model
// so that live mode works with no connection after one visit.
"use strict";

const CACHE = "{{ cache_name|escapejs }}";
const LIVE = "{{ live_url|escapejs }}";
const STATIC = "{{ static_url|escapejs }}";
// Asked on every visit, answered from the cache only when offline: the page
// (it carries a fresh CSRF token) and which model version is active.
const NETWORK_FIRST = new Set([LIVE, LIVE + "model/"]);

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("usbills-live") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (NETWORK_FIRST.has(url.pathname)) {
    event.respondWith(networkFirst(request, url.pathname));
  } else if (url.pathname.startsWith(LIVE + "model/") || url.pathname.startsWith(LIVE + "runtime/")) {
    // A version's model and card never change under its name; the runtime's
    // files change only with its pinned version, which renames the cache.
    event.respondWith(cacheFirst(request, url.pathname));
  } else if (url.pathname.startsWith(STATIC)) {
    event.respondWith(staleWhileRevalidate(event, request, url.pathname));
  }
});

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(key);
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request, key) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(key);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(key, response.clone());
  return response;
}

// Static names carry a hash of their content in production, so the cached
// copy is right; in development it is refreshed behind the scenes.
async function staleWhileRevalidate(event, request, key) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(key);
  const refresh = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(key, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(refresh.catch(() => undefined));
    return cached;
  }
  return refresh;
}

