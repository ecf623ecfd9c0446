//! The default text of a new Execute DAT: TouchDesigner's callbacks (each runs when its toggle on
//! the Execute page is on).

pub const DEFAULT_CALLBACKS: &str = r"# me - this DAT
#
# frame - the current frame
# state - True if the timeline is paused
#
# Make sure the corresponding toggle is enabled in the Execute DAT.

def onStart():
	return

def onCreate():
	return

def onExit():
	return

def onFrameStart(frame):
	return

def onFrameEnd(frame):
	return
";
