//! The default callbacks a new node's callbacks DAT gets (TouchDesigner's names and arguments).

pub const DEFAULT_CALLBACKS: &str = r"// Execute DAT callbacks. Turn each on with its toggle on the Execute page.
// me - this DAT

fn onStart() {
}

fn onFrameStart(frame) {
}

fn onFrameEnd(frame) {
}

fn onExit() {
}
";
