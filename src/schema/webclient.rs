//! The Web Client DAT's parameters: pages, tokens, defaults and help.

use super::{Input, ParDef, ParKind};

pub const PAGE: &str = "Web Client";
pub const AUTH_PAGE: &str = "Authentication";
pub const OUTPUT_PAGE: &str = "Output";
pub const LIMITS_PAGE: &str = "Limits";

pub const METHODS: &[(&str, &str)] = &[
    ("get", "GET"),
    ("post", "POST"),
    ("put", "PUT"),
    ("delete", "DELETE"),
    ("head", "HEAD"),
    ("options", "OPTIONS"),
    ("patch", "PATCH"),
];

pub const PARAMS: &[ParDef] = &{
    let common = common_pars!();
    [
        ParDef {
            token: "active",
            label: "Active",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "While off, Request and request() send nothing.",
        },
        ParDef {
            token: "reqmethod",
            label: "Request Method",
            page: PAGE,
            kind: ParKind::Menu {
                default: "get",
                items: METHODS,
            },
            help: "The HTTP method of the Request pulse.",
        },
        ParDef {
            token: "url",
            label: "URL",
            page: PAGE,
            kind: ParKind::Str("http://localhost:9980/"),
            help: "Where the Request pulse goes; https:// for TLS; $NAME reads the environment.",
        },
        ParDef {
            token: "uploadfile",
            label: "Upload File",
            page: PAGE,
            kind: ParKind::File { extensions: &[] },
            help: "A file sent as the body (instead of the data input).",
        },
        ParDef {
            token: "request",
            label: "Request",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Send the request.",
        },
        ParDef {
            token: "stop",
            label: "Stop",
            page: PAGE,
            kind: ParKind::Pulse,
            help: "Close every open request (a stream included).",
        },
        ParDef {
            token: "stream",
            label: "Stream",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Deliver the body as it arrives: onResponse per chunk (headers with the first); no size limit.",
        },
        ParDef {
            token: "verifycert",
            label: "Verify Certificate (SSL)",
            page: PAGE,
            kind: ParKind::Toggle(true),
            help: "Check the server's TLS certificate against the CA file or the built-in roots.",
        },
        ParDef {
            token: "cafile",
            label: "CA File",
            page: PAGE,
            kind: ParKind::File {
                extensions: &["pem", "crt"],
            },
            help: "PEM certificates to trust for https (instead of the built-in roots).",
        },
        ParDef {
            token: "timeout",
            label: "Timeout (ms)",
            page: PAGE,
            kind: ParKind::Int {
                default: 60_000,
                min: 1,
                max: 3_600_000,
            },
            help: "Upper limit on a whole request (the headers, when streaming); then onResponse gets code 0.",
        },
        ParDef {
            token: "includeheader",
            label: "Include Header in Output",
            page: PAGE,
            kind: ParKind::Toggle(false),
            help: "Put the status line and the response headers above the body in the output.",
        },
        ParDef {
            token: "headers",
            label: "Headers DAT",
            page: PAGE,
            kind: ParKind::Op(Input::Headers),
            help: "Table DAT of name/value rows sent as request headers (same as input 0); $NAME values read the environment.",
        },
        ParDef {
            token: "data",
            label: "Data DAT",
            page: PAGE,
            kind: ParKind::Op(Input::Data),
            help: "The body (same as input 1): a Text DAT is sent as is; a name/value Table DAT goes on the \
                   URL as a query for GET, HEAD, OPTIONS and DELETE, and as a form body otherwise.",
        },
        ParDef {
            token: "authtype",
            label: "Authentication Type",
            page: AUTH_PAGE,
            kind: ParKind::Menu {
                default: "none",
                items: &[
                    ("none", "None"),
                    ("basic", "Basic"),
                    ("oauth2", "OAuth2 (Bearer)"),
                ],
            },
            help: "Basic sends Username and Password; OAuth2 sends Token as a bearer token.",
        },
        ParDef {
            token: "username",
            label: "Username",
            page: AUTH_PAGE,
            kind: ParKind::Str(""),
            help: "For Basic; $NAME reads the environment.",
        },
        ParDef {
            token: "pw",
            label: "Password",
            page: AUTH_PAGE,
            kind: ParKind::Password,
            help: "For Basic; $NAME reads the environment and keeps it out of the project file.",
        },
        ParDef {
            token: "token",
            label: "Token",
            page: AUTH_PAGE,
            kind: ParKind::Password,
            help: "For OAuth2: sent as `Authorization: Bearer <token>`; $NAME reads the environment.",
        },
        ParDef {
            token: "callbacks",
            label: "Callbacks DAT",
            page: OUTPUT_PAGE,
            kind: ParKind::Op(Input::Callbacks),
            help: "Text DAT holding onConnect, onResponse and onDisconnect.",
        },
        ParDef {
            token: "clamp",
            label: "Clamp Output as Rows",
            page: OUTPUT_PAGE,
            kind: ParKind::Toggle(false),
            help: "Output a table of body lines, the last Maximum Lines kept (for streams), instead of the last body as text.",
        },
        ParDef {
            token: "maxlines",
            label: "Maximum Lines",
            page: OUTPUT_PAGE,
            kind: ParKind::Int {
                default: 100,
                min: 1,
                max: 10_000_000,
            },
            help: "Rows kept when Clamp Output as Rows is on.",
        },
        ParDef {
            token: "clear",
            label: "Clear Output",
            page: OUTPUT_PAGE,
            kind: ParKind::Pulse,
            help: "Empty the output.",
        },
        ParDef {
            token: "maxresponsebytes",
            label: "Max Response Size (bytes)",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 8 * 1024 * 1024,
                min: 1,
                max: 1 << 30,
            },
            help: "A longer body (not streamed) is refused: onResponse gets code 0 and the reason.",
        },
        ParDef {
            token: "maxredirects",
            label: "Max Redirects",
            page: LIMITS_PAGE,
            kind: ParKind::Int {
                default: 5,
                min: 0,
                max: 50,
            },
            help: "Redirects (301, 302, 303, 307, 308) followed per request; 0 hands the redirect to onResponse.",
        },
        common[0],
        common[1],
        common[2],
        common[3],
    ]
};
