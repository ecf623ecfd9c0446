//! Lends the engine's [`World`] to the script API for the length of one callback. The world is
//! moved into a thread-local and back, so API functions reach it without locks or unsafe code.

use std::cell::RefCell;

use rhai::EvalAltResult;

use crate::engine::World;
use crate::project::NodeId;

struct Lent {
    world: Box<World>,
    /// The operator whose callback is running (`me`).
    owner: NodeId,
}

thread_local! {
    static LENT: RefCell<Option<Lent>> = const { RefCell::new(None) };
    /// What the lender holds while its world is out: one empty world per thread, made once, so
    /// lending costs two pointer swaps instead of building a world for every callback.
    static STAND_IN: RefCell<Option<Box<World>>> = const { RefCell::new(None) };
}

/// Runs `f` with `world` available to [`with_world`]; `world` is restored even if `f` panics.
pub fn with_world_lent<R>(world: &mut Box<World>, owner: NodeId, f: impl FnOnce() -> R) -> R {
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
        });
    });
    let _restore = Restore(world);
    f()
}

/// Gives an API function the lent world and the running callback's owner.
pub fn with_world<R>(
    f: impl FnOnce(&mut World, NodeId) -> Result<R, String>,
) -> Result<R, Box<EvalAltResult>> {
    LENT.with(|l| match l.try_borrow_mut() {
        Ok(mut slot) => match slot.as_mut() {
            Some(lent) => f(&mut lent.world, lent.owner).map_err(Into::into),
            None => Err("operators are only reachable inside a callback".into()),
        },
        Err(_) => Err("operator API re-entered".into()),
    })
}
