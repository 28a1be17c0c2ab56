// The page's live part (#live) follows its event stream (data-stream): each `changed`
// event has htmx fetch the part again (hx-trigger="live-changed"). EventSource
// reconnects by itself, sending the id of the last event it got; the stream is closed
// once the part has nothing more to follow (a run that ended). See docs/ui.md.
(function () {
  "use strict";
  var source = null;

  function livePart() {
    var part = document.getElementById("live");
    return part && part.dataset.stream ? part : null;
  }

  function follow() {
    var part = livePart();
    if (!part || typeof EventSource === "undefined") {
      return;
    }
    source = new EventSource(part.dataset.stream);
    source.addEventListener("changed", function () {
      var current = livePart();
      if (current) {
        htmx.trigger(current, "live-changed");
      }
    });
  }

  function stopOnceEnded() {
    if (source && !livePart()) {
      source.close();
      source = null;
    }
  }

  document.addEventListener("DOMContentLoaded", follow);
  document.addEventListener("htmx:afterSettle", stopOnceEnded);
})();
