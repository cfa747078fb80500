//! The server's spaces, each in a SQLite file of its own.
//!
//! A space's sync takes its own store's lock and its own file's write lock,
//! so one community's large merge never makes another community wait (see
//! ADR 0004). Every file speaks as one identity, the key kept in the home
//! store (`linli-server.db`), which also keeps serving the spaces it held
//! before spaces had files of their own.
//!
//! Files are made only for a request signed for this server by a device the
//! operator lets create spaces, and removed again when that request did not
//! make the space. At most [`OPEN_LIMIT`] files are open at once: the least
//! recently used one that no request is using is closed first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use linli_core::identity::DeviceId;
use linli_core::store::Store;
use linli_core::sync::{self, Creators, ServeError, Served};

/// The file that holds the server's identity (and its spaces from before).
pub const STORE_FILE: &str = "linli-server.db";
/// The folder of the spaces' own files, `<space id>.db` each.
pub const SPACES_DIR: &str = "spaces";
/// Spaces open at once; more are opened on demand, closing idle ones.
pub const OPEN_LIMIT: usize = 256;

/// Which core handler a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Sync,
    Join,
}

#[derive(Debug)]
pub struct Spaces {
    home: Arc<Store>,
    dir: PathBuf,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    stores: HashMap<String, (Arc<Store>, u64)>,
    tick: u64,
}

impl Spaces {
    /// Open the spaces under `data_dir`, durable: every commit reaches the
    /// disk before a request is answered (`synchronous=FULL`).
    pub fn open(data_dir: &Path) -> Result<Spaces, String> {
        let dir = data_dir.join(SPACES_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the data directory: {e}"))?;
        let home = Store::open(data_dir.join(STORE_FILE)).map_err(|e| format!("cannot open the store: {e}"))?;
        home.set_durable().map_err(|e| format!("cannot make the store durable: {e}"))?;
        Ok(Spaces { home: Arc::new(home), dir, open: Mutex::new(Open::default()) })
    }

    /// Who this server is: the device id requests must be signed for.
    pub fn device_id(&self) -> DeviceId {
        self.home.device_id()
    }

    /// The store that holds `space`, if this server holds it.
    pub fn get(&self, space: &str) -> Result<Option<Arc<Store>>, ServeError> {
        if self.home.holds_space(space)? {
            return Ok(Some(self.home.clone()));
        }
        let Some(path) = self.path(space) else { return Ok(None) };
        if !path.exists() {
            return Ok(None);
        }
        let store = self.opened(space, &path)?;
        Ok(store.holds_space(space)?.then_some(store))
    }

    /// How many spaces this server holds.
    pub fn count(&self) -> Result<usize, ServeError> {
        let home = self.home.spaces()?.len();
        let files = std::fs::read_dir(&self.dir)
            .map_err(|e| ServeError::Internal(format!("cannot list the spaces: {e}")))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".db")))
            .count();
        Ok(home + files)
    }

    /// Serve one request: it goes to the store of the space it names. A
    /// request for a space held nowhere is answered by the home store, which
    /// makes nothing (it refuses as the core does: 401, 400 or 404), unless
    /// it is signed for this server by a device the operator lets create
    /// spaces: that one gets a file of its own.
    pub fn serve(
        &self,
        route: Route,
        creators: &Creators,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Served, ServeError> {
        let space = sync::space_of(body);
        let held = match &space {
            Some(s) => self.get(s)?,
            None => None,
        };
        let handle = |store: &Store, creators: &Creators| match route {
            Route::Sync => sync::serve_sync(store, creators, header, body, now),
            Route::Join => sync::serve_join(store, header, body, now),
        };
        if let Some(store) = held {
            return handle(&store, creators);
        }
        let founding = route == Route::Sync
            && sync::authenticate(&self.device_id(), header, sync::SYNC_PATH, body, now)
                .is_ok_and(|a| creators.admits(&a.device));
        match space {
            Some(space) if founding => {
                let path = self.path(&space).ok_or_else(|| ServeError::BadRequest("malformed space id".into()))?;
                let store = self.opened(&space, &path)?;
                let served = handle(&store, creators);
                if !store.holds_space(&space)? {
                    drop(store);
                    self.discard(&space, &path);
                }
                served
            }
            _ => handle(&self.home, &Creators::Nobody),
        }
    }

    /// The file of a space id (32 lowercase hex digits, nothing else).
    fn path(&self, space: &str) -> Option<PathBuf> {
        let well_formed = space.len() == 32 && space.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| self.dir.join(format!("{space}.db")))
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The map holds no invariant a panic could break halfway.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open store of a space's file, opening (or making) it. Only one
    /// store is ever open per file: they are opened and closed under the lock.
    fn opened(&self, space: &str, path: &Path) -> Result<Arc<Store>, ServeError> {
        let mut open = self.lock();
        open.tick += 1;
        let tick = open.tick;
        if let Some((store, used)) = open.stores.get_mut(space) {
            *used = tick;
            return Ok(store.clone());
        }
        if open.stores.len() >= OPEN_LIMIT {
            let idle = open
                .stores
                .iter()
                .filter(|(_, (s, _))| Arc::strong_count(s) == 1)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => {
                    open.stores.remove(&k);
                }
                None => return Err(ServeError::Internal("every open space is busy".into())),
            }
        }
        let store = self.home.open_sibling(path)?;
        store.set_durable()?;
        let store = Arc::new(store);
        open.stores.insert(space.to_string(), (store.clone(), tick));
        Ok(store)
    }

    /// Close and remove a file a founding request did not make a space in,
    /// unless another request is using it.
    fn discard(&self, space: &str, path: &Path) {
        let mut open = self.lock();
        if open.stores.get(space).is_some_and(|(s, _)| Arc::strong_count(s) == 1) {
            open.stores.remove(space);
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }
}
