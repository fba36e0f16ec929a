"""A person signing in at an OpenID Provider, for credd's tests.

Follows oidc-provider's own login and consent pages the way a person in a browser does
(cookies kept, forms filled and submitted), either with an HTTP client or, with `--chromium`,
in a real headless Chromium driven over WebDriver by Debian's chromedriver.

    oidc_person.py [--login NAME] [--chromium] [--stop-at-redirect] URL
        Signs in from the authorization URL. The provider then sends the browser to credd's
        loopback redirect: by default it is followed and credd's page is printed; with
        --stop-at-redirect the redirect's URL is printed instead, and nothing is delivered.
    oidc_person.py [--login NAME] --device VERIFICATION_URI USER_CODE
        Enters a device sign-in's code and approves it.

    oidc_person.py --follow URL
        Opens URL and follows its redirects, for a provider that has the person signed in
        already (a browser with a session), and prints the last page.
    oidc_person.py --fetch URL
        Prints the page at URL (the provider's keys, say).
    oidc_person.py --redeem TOKEN_ENDPOINT CLIENT_ID REDIRECT_URL
        Tries to redeem the code in a redirect URL as someone who stole it, without the PKCE
        verifier, and prints the provider's answer.

The provider's TLS certificate is checked against REQUESTS_CA_BUNDLE (the test's CA).
"""

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.parse

import requests


def forms(html):
    """The page's first form: its action and its fields (name -> value)."""
    match = re.search(r"<form[^>]*action=\"([^\"]*)\"[^>]*>(.*?)</form>", html, re.S)
    if not match:
        return None, None
    fields = {}
    for tag in re.findall(r"<input[^>]*>", match.group(2)):
        name = re.search(r"name=\"([^\"]+)\"", tag)
        value = re.search(r"value=\"([^\"]*)\"", tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return match.group(1), fields


def sign_in(session, response, login, provider):
    """Fills and submits forms until the provider redirects away from itself."""
    for _ in range(10):
        action, fields = forms(response.text)
        if action is None:
            raise SystemExit(f"no form on {response.url}: {response.text[:300]}")
        if "login" in fields:
            fields["login"] = login
        if "password" in fields:
            fields["password"] = "any password"
        response = session.post(urllib.parse.urljoin(response.url, action), data=fields,
                                allow_redirects=False)
        while response.status_code in (302, 303):
            target = urllib.parse.urljoin(response.url, response.headers["location"])
            if not target.startswith(provider):
                return target
            response = session.get(target, allow_redirects=False)
        if response.status_code == 200 and "<form" not in response.text:
            return response
    raise SystemExit("the provider kept asking")


def http_client(url, login, stop_at_redirect):
    provider = origin(url)
    session = requests.Session()
    response = session.get(url)
    redirect = sign_in(session, response, login, provider)
    if stop_at_redirect:
        print(redirect)
        return
    # The loopback redirect, as the browser follows it (no proxy, plain http).
    answer = requests.get(redirect, proxies={"http": None}, timeout=30)
    print(answer.status_code, re.sub(r"<[^>]+>", " ", answer.text).strip())


def device(uri, user_code, login):
    provider = origin(uri)
    session = requests.Session()
    response = session.get(uri)
    action, fields = forms(response.text)
    fields["user_code"] = user_code
    response = session.post(urllib.parse.urljoin(response.url, action), data=fields)
    done = sign_in(session, response, login, provider)
    text = done.text if hasattr(done, "text") else done
    print(re.sub(r"<[^>]+>", " ", text).strip()[:200])


def redeem(token_endpoint, client_id, redirect):
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))
    answer = requests.post(token_endpoint, data={
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": query["code"],
        "redirect_uri": redirect.split("?")[0],
        "code_verifier": "a-verifier-guessed-by-someone-who-stole-the-code-0123456789",
    })
    print(answer.status_code, answer.json().get("error"))


def origin(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def chromium(url, login):
    """The same sign-in in headless Chromium, over the W3C WebDriver protocol."""
    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/status", timeout=2).json()["value"]["ready"])
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": False,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--ignore-certificate-errors",
                         f"--user-data-dir=/tmp/credd-chromium-{port}"],
            },
        }}}
        session = post(f"{base}/session", capabilities)["sessionId"]
        at = f"{base}/session/{session}"
        try:
            post(f"{at}/url", {"url": url})
            type_into(at, "input[name=login]", login)
            type_into(at, "input[name=password]", "any password")
            click(at, "button[type=submit]")
            # The consent page, then the provider sends the browser to credd's listener. (The
            # consent page names the client, credd, too: only the listener's page will do.)
            done = "credd has the sign-in"
            wait_for(lambda: "consent" in page_source(at) or done in page_source(at))
            if done not in page_source(at):
                click(at, "button[type=submit]")
            wait_for(lambda: done in page_source(at))
            current = post_get(f"{at}/url")
            print(current.split("?")[0], re.sub(r"<[^>]+>", " ", page_source(at)).strip())
        finally:
            requests.delete(at, timeout=30)
    finally:
        driver.kill()
        driver.wait()


def post(url, body):
    answer = requests.post(url, json=body, timeout=60).json()["value"]
    if isinstance(answer, dict) and "error" in answer:
        raise SystemExit(f"webdriver: {answer['error']}: {answer.get('message', '')[:300]}")
    return answer


def post_get(url):
    return requests.get(url, timeout=60).json()["value"]


def element(at, selector):
    found = {}

    def find():
        answer = requests.post(f"{at}/element", timeout=60,
                               json={"using": "css selector", "value": selector}).json()["value"]
        if "error" in answer:
            return False
        found["id"] = next(iter(answer.values()))
        return True

    wait_for(find)
    return found["id"]


def type_into(at, selector, text):
    post(f"{at}/element/{element(at, selector)}/value", {"text": text})


def click(at, selector):
    post(f"{at}/element/{element(at, selector)}/click", {})


def page_source(at):
    return post_get(f"{at}/source")


def wait_for(ready, seconds=30):
    end = time.time() + seconds
    while True:
        try:
            if ready():
                return
        except (requests.RequestException, KeyError, ValueError):
            pass
        if time.time() > end:
            raise SystemExit("timed out waiting for the browser")
        time.sleep(0.2)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--login", default="alice")
    parser.add_argument("--chromium", action="store_true")
    parser.add_argument("--stop-at-redirect", action="store_true")
    parser.add_argument("--device", action="store_true")
    parser.add_argument("--redeem", action="store_true")
    parser.add_argument("--fetch", action="store_true")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("url")
    parser.add_argument("more", nargs="*")
    args = parser.parse_args()
    if args.follow:
        answer = requests.get(args.url, timeout=30, proxies={"http": None})
        print(answer.status_code, re.sub(r"<[^>]+>", " ", answer.text).strip())
    elif args.fetch:
        print(requests.get(args.url, timeout=30).text)
    elif args.redeem:
        redeem(args.url, *args.more)
    elif args.device:
        device(args.url, args.more[0], args.login)
    elif args.chromium:
        chromium(args.url, args.login)
    else:
        http_client(args.url, args.login, args.stop_at_redirect)


if __name__ == "__main__":
    main()
