// Models the user chose to keep: in this browser's own IndexedDB (origin-private storage),
// never sent anywhere. One record per file name: {name, bytes, size, saved}.
const DB = 'endplate';
const STORE = 'models';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'name' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the browser refused to store the model'));
    });
  } finally {
    db.close();
  }
}

/// The kept models, newest first, without their bytes: [{name, size, saved}].
export async function keptModels() {
  const all = await run('readonly', (s) => s.getAll());
  return all.map(({ name, size, saved }) => ({ name, size, saved })).sort((a, b) => b.saved - a.saved);
}

/// Keep a model's bytes under its file name (a model of the same name is replaced).
export async function keepModel(name, bytes) {
  await run('readwrite', (s) => s.put({ name, bytes, size: bytes.byteLength, saved: Date.now() }));
}

/// The bytes of a kept model (an ArrayBuffer), or null.
export async function keptModel(name) {
  const rec = await run('readonly', (s) => s.get(name));
  return rec ? rec.bytes : null;
}

export async function forgetModel(name) {
  await run('readwrite', (s) => s.delete(name));
}
