//! The default callbacks a new Web Client DAT's callbacks DAT gets: TouchDesigner's template.

pub const DEFAULT_CALLBACKS: &str = r"# me - this DAT
#
# webClientDAT - the connected Web Client DAT
# id - the request's unique identifier (what request() returned)
#
# datpatch: a request that fails (no connection, timeout, too large) reaches onResponse with
# statusCode {'code': 0, 'message': <why>}; the reason is also on the node.

def onConnect(webClientDAT, id):
	return

# me - this DAT
# webClientDAT - the connected Web Client DAT
# id - the request's unique identifier
def onDisconnect(webClientDAT, id):
	return

# me - this DAT
# webClientDAT - the connected Web Client DAT
# statusCode - the status of the response as a dict: {'code': 200, 'message': 'OK'}
# headerDict - the header of the response as a dict (once per stream when streaming)
# data - the data of the response, as bytes
# id - the request's unique identifier
def onResponse(webClientDAT, statusCode, headerDict, data, id):
	return
";
