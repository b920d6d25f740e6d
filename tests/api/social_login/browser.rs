//! A browser as far as these tests need one: a cookie jar per host (name →
//! value; expired cookies removed), redirects followed by hand so that each
//! hop's cookies are kept, and forms posted like a browser would.

use std::collections::HashMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};

pub struct Browser {
    client: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

/// One answer: its status, where it sends the browser, and its body.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<url::Url>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn host_key(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: HashMap::new(),
        }
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(url).expect("url");
        self.jar.get(&host_key(&url))?.get(name).cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let url = url::Url::parse(url).expect("url");
        self.jar
            .entry(host_key(&url))
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        customise: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Answer {
        let url = url::Url::parse(url).expect("url");
        let key = host_key(&url);
        let mut request = self.client.request(method, url.clone());
        if let Some(cookies) = self.jar.get(&key).filter(|c| !c.is_empty()) {
            let header = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(COOKIE, header);
        }
        let response = customise(request).send().await.expect("request");
        let status = response.status();
        for set in response.headers().get_all(SET_COOKIE) {
            let text = set.to_str().expect("ascii");
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            let expired = attributes
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            let cookies = self.jar.entry(key.clone()).or_default();
            if expired || value.is_empty() {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| url.join(l.to_str().expect("ascii")).expect("location"));
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            location,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        self.send(Method::GET, url, |r| r).await
    }

    /// GETs `url` and follows redirects (at most 10) while `keep_going`
    /// says so; answers the last hop.
    pub async fn follow_while(
        &mut self,
        url: &str,
        mut keep_going: impl FnMut(&url::Url) -> bool,
    ) -> Answer {
        let mut answer = self.get(url).await;
        for _ in 0..10 {
            match &answer.location {
                Some(next) if answer.status.is_redirection() && keep_going(next) => {
                    let next = next.to_string();
                    answer = self.get(&next).await;
                }
                _ => break,
            }
        }
        answer
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.send(Method::POST, url, move |r| r.form(&form)).await
    }

    /// A call the UI's script makes: JSON, with the CSRF cookie's value.
    pub async fn ui_json(
        &mut self,
        method: Method,
        base: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Answer {
        let csrf = self.cookie(base, "authd_csrf").unwrap_or_default();
        self.send(method, &format!("{base}{path}"), move |r| {
            r.header("x-csrf-token", csrf).json(&body)
        })
        .await
    }
}
