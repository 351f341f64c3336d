// The decisions page: the funds left once the approvals being entered are recorded, kept up
// to date as the amounts are typed (the page works without it; the engine checks the funds).
(function () {
  var form = document.getElementById("decisions-form");
  var out = document.getElementById("funds-left");
  if (!form || !out || form.dataset.left === "") return;
  var left = parseFloat(form.dataset.left);
  var lang = document.documentElement.lang || "en";
  // the page's words, in its language (from the catalogues, as every other word of the page)
  var words = [out.dataset.left + " ", out.dataset.over + " "];
  function amount(text) {
    var cleaned = text.replace(/[\s\u00a0\u202f,]/g, "");
    var value = parseFloat(cleaned);
    return isFinite(value) ? value : 0;
  }
  function update() {
    var entered = 0;
    form.querySelectorAll("select.decision").forEach(function (select) {
      if (select.value === "approved" || select.value === "approved_with_conditions") {
        var ref = select.id.slice("decision_".length);
        var input = document.getElementById("amount_" + ref);
        if (input) entered += amount(input.value);
      }
    });
    var rest = left - entered;
    var money = new Intl.NumberFormat(lang, { style: "currency", currency: form.dataset.currency || "USD" });
    out.textContent = rest >= 0 ? words[0] + money.format(rest) : words[1] + money.format(-rest);
    out.className = rest >= 0 ? "hint" : "error";
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
