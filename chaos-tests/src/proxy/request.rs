//! What a path-style S3 request (`/bucket/key...`) is: its operation and its object key.

use hyper::Method;

use super::faults::Op;

/// Classifies a path-style S3 request (`/bucket/key...`).
pub(super) fn classify(method: &Method, path: &str, query: Option<&str>) -> Op {
    let has_key = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    match *method {
        Method::GET
            if !has_key
                || query.is_some_and(|q| q.contains("list-type") || q.contains("prefix=")) =>
        {
            Op::List
        }
        Method::GET => Op::Get,
        Method::PUT => Op::Put,
        Method::HEAD => Op::Head,
        Method::DELETE => Op::Delete,
        _ => Op::Post,
    }
}

/// The object key, or the listed prefix for a LIST.
pub(super) fn object_key(path: &str, query: Option<&str>) -> String {
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, key)| key)
        .unwrap_or("");
    if !key.is_empty() {
        return percent_decode(key);
    }
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("prefix="))
        .map(percent_decode)
        .unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_path_style_requests() {
        assert_eq!(classify(&Method::GET, "/b/tenants/t/x", None), Op::Get);
        assert_eq!(
            classify(&Method::GET, "/b", Some("list-type=2&prefix=a")),
            Op::List
        );
        assert_eq!(classify(&Method::GET, "/b/", None), Op::List);
        assert_eq!(classify(&Method::PUT, "/b/k", None), Op::Put);
        assert_eq!(classify(&Method::HEAD, "/b/k", None), Op::Head);
        assert_eq!(classify(&Method::DELETE, "/b/k", None), Op::Delete);
        assert_eq!(classify(&Method::POST, "/b", Some("delete")), Op::Post);
    }
}
