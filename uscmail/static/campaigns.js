// uscmail campaign pages: the preview follows the compose form as you type, a draft saves itself when you stop typing
// (and the page warns before you leave with changes not saved), and the progress of a sending campaign updates
// itself. The pages work without this file: Preview, Save and Refresh do the same by hand.
"use strict";

(() => {
  const PREVIEW_DELAY_MS = 600;
  const POLL_MS = 2000;

  // Compose page: post the form into the sandboxed preview frame, as the Preview button does, a moment after the
  // last change. form.submit() skips the browser's required-field checks, which would interrupt typing.
  function followTyping() {
    const button = document.getElementById("preview-button");
    const form = button && button.form;
    if (!form) return;
    let timer = null;
    const preview = () => {
      timer = null;
      const action = form.getAttribute("action");
      const target = form.getAttribute("target");
      form.setAttribute("action", button.formAction);
      form.setAttribute("target", button.formTarget);
      form.submit();
      form.setAttribute("action", action);
      if (target === null) form.removeAttribute("target");
      else form.setAttribute("target", target);
    };
    const soon = () => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(preview, PREVIEW_DELAY_MS);
    };
    form.addEventListener("input", soon);
    form.addEventListener("change", soon);
    const hint = document.querySelector(".preview-hint");
    if (hint) hint.textContent = "Shows the mail as it stands, unsaved, for “Alex”; it follows your typing.";
    // Without a saved version to show (a new campaign, or changes that could not be saved), show what the form holds.
    const body = form.elements.namedItem("body");
    if (!document.getElementById("preview-frame").getAttribute("src") && body && body.value.trim()) preview();
  }

  // Compose page: a few seconds after the last change, post the form (its CSRF token included) to the autosave
  // address, one request at a time; show "Saved at HH:MM" in the status line (a polite live region). The page
  // warns before it is left while changes are not saved, but not once the organiser presses Save.
  const AUTOSAVE_IDLE_MS = 2500;
  const SUBMIT_WAIT_MS = 4000; // the longest Save waits for an autosave under way

  function autosaveDrafts() {
    const form = document.getElementById("compose-form");
    if (!form) return;
    const status = document.getElementById("autosave-status");
    const revision = form.elements.namedItem("revision");
    let changes = form.dataset.unsaved === "true" ? 1 : 0; // a page shown again after a refused save holds changes
    let savedChanges = 0;
    let submitting = false;
    let stopped = false;
    let timer = null;
    let inFlight = null;
    let controller = null; // aborts the autosave under way
    const unsaved = () => changes !== savedChanges && !submitting;
    const say = (text, problem = false) => {
      if (!status) return;
      if (status.textContent !== text) status.textContent = text;
      status.classList.toggle("autosave-problem", problem);
    };

    const save = () => {
      timer = null;
      const url = form.dataset.autosaveUrl;
      if (!url || stopped || submitting || !unsaved()) return;
      if (inFlight) {
        timer = setTimeout(save, AUTOSAVE_IDLE_MS);
        return;
      }
      const sending = changes;
      say("Saving…");
      controller = new AbortController();
      inFlight = fetch(url, {
        method: "POST",
        signal: controller.signal,
        body: new FormData(form),
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      })
        .then((response) => {
          const type = response.headers.get("Content-Type") || "";
          if (!type.startsWith("application/json")) throw new Error(`autosave: ${response.status}`);
          return response.json().then((answer) => ({ ok: response.ok, answer }));
        })
        .then(({ ok, answer }) => {
          if (!ok) {
            if (answer.stop) stopped = true;
            say(`Not saved: ${answer.error}`, true);
            return;
          }
          if (revision) revision.value = String(answer.revision);
          if (form.dataset.autosaveUrl !== answer.autosave_url) {
            // The first save of a new campaign made the draft: from now on this page edits it.
            form.dataset.autosaveUrl = answer.autosave_url;
            form.setAttribute("action", answer.edit_url);
            window.history.replaceState(null, "", answer.edit_url);
          }
          savedChanges = sending;
          say(`Saved at ${answer.saved_at}.`);
        })
        .catch(() => {
          if (submitting) return; // given up for the Save under way: the page is being left
          say("Not saved automatically (signed out, or the server is away). Press the Save button to save.", true);
        })
        .finally(() => {
          inFlight = null;
          controller = null;
        });
    };

    const changed = () => {
      changes += 1;
      if (stopped || !form.dataset.autosaveUrl) return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(save, AUTOSAVE_IDLE_MS);
    };
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);

    form.addEventListener("submit", (event) => {
      if (submitting || (event.submitter && event.submitter.id === "preview-button")) return;
      if (timer !== null) clearTimeout(timer);
      if (inFlight) {
        // Wait for the autosave under way, so the form goes with the revision it produced; but not for long: a
        // save that has not answered in a few seconds is given up, and the form goes as it is (the server refuses
        // it as an edit conflict, with the organiser's text kept, if that save did land meanwhile).
        event.preventDefault();
        const send = () => {
          if (submitting) return;
          submitting = true;
          if (controller) controller.abort();
          form.submit();
        };
        inFlight.finally(send);
        setTimeout(send, SUBMIT_WAIT_MS);
        return;
      }
      submitting = true;
    });

    window.addEventListener("beforeunload", (event) => {
      if (!unsaved()) return;
      event.preventDefault();
      event.returnValue = ""; // older browsers need a value to show the dialog
    });
  }

  const number = (value) => Number(value).toLocaleString("en-GB");

  // Words a time remaining as the page does (routes.duration_text).
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "not known yet";
    if (seconds === 0) return "none";
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }

  // Campaign page: while the campaign sends (or is paused), poll stats.json and update the numbers in place.
  function followProgress() {
    const panel = document.getElementById("progress");
    if (!panel || !["sending", "paused"].includes(panel.dataset.status)) return;
    const bar = document.getElementById("send-progress");
    const note = document.getElementById("progress-note");
    const status = document.getElementById("campaign-status");
    const detail = document.getElementById("status-detail");
    const initialStatus = panel.dataset.status;
    const announcement = document.getElementById("progress-announcement");
    const show = (name, text) => {
      for (const element of panel.querySelectorAll(`[data-stat="${name}"]`)) element.textContent = text;
    };
    // Screen readers hear a short sentence at each tenth of the way and when the status changes, not every poll.
    let announced = `${panel.dataset.status} ${Math.floor(Number(bar.value) / 10)}`;
    const update = (stats) => {
      for (const name of ["done", "recipients", "sent", "failed", "pending", "skipped", "unknown", "unsubscribes"]) {
        show(name, number(stats[name]));
      }
      show("percent", String(stats.percent));
      show("rate_per_second", Number(stats.rate_per_second).toFixed(1));
      show("seconds_remaining", duration(stats.seconds_remaining));
      show("snapshot", stats.snapshot_done ? "" : " — still listing the recipients");
      bar.value = stats.percent;
      bar.textContent = `${stats.percent}%`;
      status.textContent = stats.status;
      status.className = `status status-${stats.status}`;
      detail.textContent = stats.status_detail || "";
      panel.dataset.status = stats.status;
      // Buttons for a status the campaign has left (Pause once it is sent) would only be refused: hide them.
      for (const control of document.querySelectorAll("[data-for-status]")) {
        control.hidden = !control.dataset.forStatus.split(" ").includes(stats.status);
      }
      const milestone = `${stats.status} ${Math.floor(stats.percent / 10)}`;
      if (milestone !== announced) {
        announced = milestone;
        announcement.textContent = `${stats.percent}% done: ${number(stats.sent)} sent, ${number(stats.failed)} failed. Campaign ${stats.status}.`;
      }
      const time = new Date().toLocaleTimeString("en-GB");
      note.textContent =
        stats.status === initialStatus
          ? `Updated live, last at ${time}.`
          : `The campaign is now ${stats.status} (${time}). Refresh for the actions that fit.`;
    };
    const poll = () => {
      fetch(panel.dataset.statsUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then((response) => {
          const type = response.headers.get("Content-Type") || "";
          if (!response.ok || !type.startsWith("application/json")) throw new Error(`stats: ${response.status}`);
          return response.json();
        })
        .then((stats) => {
          update(stats);
          if (stats.status === "sending" || stats.status === "paused") setTimeout(poll, POLL_MS);
        })
        .catch(() => {
          // Signed out, or the server is away: leave the last numbers and say how to get fresh ones.
          note.textContent = "Live updates stopped.";
        });
    };
    setTimeout(poll, POLL_MS);
  }

  followTyping();
  autosaveDrafts();
  followProgress();
})();
