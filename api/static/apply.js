// The applicant's form: the budget's totals by category and year kept up to date as the
// lines are typed (the server computes the same table on each save, so the page works
// without this script), and the list of problems brought into view after a save.
(function () {
  "use strict";
  var problems = document.getElementById("problems");
  if (problems) { problems.focus(); }
  var table = document.getElementById("budget-lines");
  var out = document.getElementById("budget-totals");
  if (!table || !out) { return; }
  var money = new Intl.NumberFormat(table.dataset.language, { style: "currency", currency: table.dataset.currency });
  var AMOUNT = /^([1-9][0-9]{0,2}(?:[.,][0-9]{3})+|[0-9]+)(?:[.,]([0-9]{1,2}))?$/;

  // An amount as the form reads it (api/application_form.py, read_amount), in cents; null if it is not one.
  function cents(text) {
    var plain = text.trim().replace(/[\s\u00a0\u202f']/g, "").replace(/^(US)?\$/, "").replace(/USD$/, "");
    var found = AMOUNT.exec(plain);
    if (!found) { return null; }
    var whole = parseInt(found[1].replace(/[.,]/g, ""), 10);
    var part = found[2] ? parseInt((found[2] + "0").slice(0, 2), 10) : 0;
    return whole * 100 + part;
  }

  function cell(tag, text, className, scope) {
    var element = document.createElement(tag);
    element.textContent = text;
    if (className) { element.className = className; }
    if (scope) { element.scope = scope; }
    return element;
  }

  function update() {
    var totals = {}, names = {}, order = [], years = {}, unread = 0;
    table.querySelectorAll("tr.line").forEach(function (row) {
      var category = row.querySelector("[data-part=category]");
      var year = row.querySelector("[data-part=year]").value.trim();
      var amount = row.querySelector("[data-part=amount]").value;
      if (!amount.trim()) { return; }
      var value = cents(amount);
      if (value === null || !/^[0-9]+$/.test(year)) { unread += 1; return; }
      year = String(parseInt(year, 10));  // "01" is year 1, as the server reads it
      var key = category.value;
      if (!(key in totals)) { totals[key] = {}; order.push(key); names[key] = key ? category.options[category.selectedIndex].text : "—"; }
      totals[key][year] = (totals[key][year] || 0) + value;
      years[year] = true;
    });
    var yearList = Object.keys(years).map(Number).sort(function (a, b) { return a - b; });
    var categories = Array.prototype.map.call(table.querySelector("[data-part=category]").options, function (o) { return o.value; });
    order.sort(function (a, b) { return categories.indexOf(a) - categories.indexOf(b); });
    out.textContent = "";
    if (order.length) {
      var grid = document.createElement("table");
      grid.className = "totals";
      var head = grid.createTHead().insertRow();
      head.appendChild(cell("th", out.dataset.category, "", "col"));
      yearList.forEach(function (y) { head.appendChild(cell("th", out.dataset.year.replace("{n}", y), "number", "col")); });
      head.appendChild(cell("th", out.dataset.total, "number", "col"));
      var body = grid.createTBody(), byYear = {}, all = 0;
      order.forEach(function (key) {
        var row = body.insertRow(), sum = 0;
        row.appendChild(cell("th", names[key], "", "row"));
        yearList.forEach(function (y) {
          var value = totals[key][y] || 0;
          sum += value; byYear[y] = (byYear[y] || 0) + value;
          row.appendChild(cell("td", money.format(value / 100), "number"));
        });
        all += sum;
        row.appendChild(cell("td", money.format(sum / 100), "number"));
      });
      var foot = grid.createTFoot().insertRow();
      foot.appendChild(cell("th", out.dataset.total, "", "row"));
      yearList.forEach(function (y) { foot.appendChild(cell("td", money.format(byYear[y] / 100), "number")); });
      foot.appendChild(cell("td", money.format(all / 100), "number grant"));
      out.appendChild(grid);
    } else {
      out.appendChild(cell("p", out.dataset.empty, "hint"));
    }
    if (unread) { out.appendChild(cell("p", out.dataset.unread.replace("{n}", unread), "error")); }
    announce();
  }

  // The new total, said once typing pauses (a screen reader is not read the whole table at each key).
  var said = document.getElementById("budget-said"), pause = null;
  function announce() {
    if (!said) { return; }
    clearTimeout(pause);
    pause = setTimeout(function () {
      var total = out.querySelector("tfoot td:last-child");
      said.textContent = total ? said.dataset.total.replace("{amount}", total.textContent) : "";
    }, 800);
  }

  table.addEventListener("input", update);
  table.addEventListener("change", update);
})();
