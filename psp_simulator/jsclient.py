"""The browser script served at ``/js/v1.js`` (defines ``window.PSPSim``)."""

from __future__ import annotations

SCRIPT = r"""/* PSP Simulator browser client v1.
 * PSPSim.createToken(publicKey, baseUrl, {number, exp_month, exp_year, cvc})
 *   -> Promise resolving to the token object, or rejecting with the API's
 *      error object ({type, code, message, param?}).
 * baseUrl may be empty/null: the origin this script was loaded from is used.
 */
(function (global) {
  "use strict";
  var scriptOrigin = "";
  try {
    if (global.document && global.document.currentScript) {
      scriptOrigin = new URL(global.document.currentScript.src).origin;
    }
  } catch (e) { /* ignore */ }

  function createToken(publicKey, baseUrl, card) {
    var base = String(baseUrl || scriptOrigin).replace(/\/+$/, "");
    card = card || {};
    var payload = {
      number: card.number,
      exp_month: card.exp_month,
      exp_year: card.exp_year,
      cvc: card.cvc
    };
    return global.fetch(base + "/v1/tokens", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + publicKey
      },
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) { return body; }
        throw (body && body.error) || {
          type: "api_error", code: "http_" + response.status,
          message: "Unexpected HTTP status " + response.status
        };
      });
    }, function (err) {
      throw {
        type: "api_connection_error", code: "network_error",
        message: String((err && err.message) || err)
      };
    });
  }

  global.PSPSim = { version: "1", createToken: createToken };
})(typeof window !== "undefined" ? window : this);
"""
