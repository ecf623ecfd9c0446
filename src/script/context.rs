//! Lends the engine's [`World`] (and the host's per-project state) to the script API for the
//! length of one callback. The world is moved into a thread-local and back, so the API reaches it
//! without locks; a thread that is not running a callback finds nothing there, which is how the
//! API answers only on the cook thread (TouchDesigner's rule).

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::Mutex;

use super::host::HostState;
use crate::engine::World;
use crate::project::NodeId;

struct Lent {
    world: Box<World>,
    /// The operator whose callback is running.
    owner: NodeId,
    state: Arc<Mutex<HostState>>,
}

thread_local! {
    static LENT: RefCell<Option<Lent>> = const { RefCell::new(None) };
    /// What the lender holds while its world is out: one empty world per thread, made once, so
    /// lending costs two pointer swaps instead of building a world for every callback.
    static STAND_IN: RefCell<Option<Box<World>>> = const { RefCell::new(None) };
}

/// The error every API call outside a callback on the cook thread gets.
pub const NOT_ON_COOK_THREAD: &str = "datpatch's operators can be used only on the cook thread, \
    inside a callback (as in TouchDesigner, where only the main thread may touch operators): \
    hand results from other threads to a queue and read it in a callback";

/// Runs `f` with `world` available to [`with_world`]; `world` is restored even if `f` panics.
/// A call made while a world is already lent (a module compiled inside a callback) uses that one.
pub fn with_world_lent<R>(
    world: &mut Box<World>,
    owner: NodeId,
    state: &Arc<Mutex<HostState>>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<'a>(&'a mut Box<World>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(lent) = LENT.with(|l| l.borrow_mut().take()) {
                let stand_in = std::mem::replace(self.0, lent.world);
                STAND_IN.with(|s| *s.borrow_mut() = Some(stand_in));
            }
        }
    }
    let stand_in = STAND_IN.with(|s| s.borrow_mut().take()).unwrap_or_default();
    let taken = std::mem::replace(world, stand_in);
    LENT.with(|l| {
        *l.borrow_mut() = Some(Lent {
            world: taken,
            owner,
            state: state.clone(),
        });
    });
    let _restore = Restore(world);
    f()
}

/// Whether a world is lent to this thread (a callback is running here).
pub fn is_lent() -> bool {
    LENT.with(|l| l.try_borrow().is_ok_and(|slot| slot.is_some()))
}

/// Gives an API function the lent world and the running callback's owner. Do not run Python
/// inside `f`: Python may call back into the API, which would find the world borrowed.
pub fn with_world<R>(f: impl FnOnce(&mut World, NodeId) -> Result<R, String>) -> Result<R, String> {
    LENT.with(|l| match l.try_borrow_mut() {
        Ok(mut slot) => match slot.as_mut() {
            Some(lent) => f(&mut lent.world, lent.owner),
            None => Err(NOT_ON_COOK_THREAD.into()),
        },
        Err(_) => Err("operator API re-entered".into()),
    })
}

/// The host state of the lent call (modules, storage, scheduled runs).
pub fn host_state() -> Result<Arc<Mutex<HostState>>, String> {
    LENT.with(|l| match l.try_borrow() {
        Ok(slot) => slot
            .as_ref()
            .map(|lent| lent.state.clone())
            .ok_or_else(|| NOT_ON_COOK_THREAD.to_string()),
        Err(_) => Err("operator API re-entered".into()),
    })
}
