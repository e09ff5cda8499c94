// Encrypt the report in the browser before it leaves it (progressive enhancement).
//
// The form works without JavaScript. With it, and when the portal publishes a team key,
// a checkbox (on by default) makes the description, steps to reproduce, impact and every
// attachment OpenPGP messages encrypted to the team key before the form is sent: the
// server never receives their plaintext. The key is fetched from this site and checked
// against the fingerprint printed into the page.
import * as openpgp from "../vendor/openpgp/openpgp.min.mjs";

const form = document.querySelector("form[data-team-key-url]");

function armored(text) {
  return text.includes("-----BEGIN PGP MESSAGE-----");
}

async function teamKey() {
  const response = await fetch(form.dataset.teamKeyUrl, { credentials: "same-origin" });
  if (!response.ok) throw new Error("the team key could not be downloaded");
  const key = await openpgp.readKey({ armoredKey: await response.text() });
  const expected = form.dataset.teamKeyFingerprint.toLowerCase();
  if (key.getFingerprint().toLowerCase() !== expected) throw new Error("the downloaded key has the wrong fingerprint");
  return key;
}

async function encryptText(value, key) {
  const message = await openpgp.createMessage({ text: value });
  return openpgp.encrypt({ message, encryptionKeys: key, format: "armored" });
}

async function encryptFile(file, key) {
  const data = new Uint8Array(await file.arrayBuffer());
  const message = await openpgp.createMessage({ binary: data, filename: file.name });
  const ciphertext = await openpgp.encrypt({ message, encryptionKeys: key, format: "armored" });
  return new File([ciphertext], file.name + ".asc", { type: "application/pgp-encrypted" });
}

async function encryptForm() {
  const key = await teamKey();
  for (const name of ["description", "steps_to_reproduce", "impact"]) {
    const field = form.elements.namedItem(name);
    if (field && field.value.trim() && !armored(field.value)) {
      field.value = await encryptText(field.value, key);
    }
  }
  const input = form.elements.namedItem("attachments");
  if (input && input.files.length) {
    const transfer = new DataTransfer();
    for (const file of input.files) transfer.items.add(await encryptFile(file, key));
    input.files = transfer.files;
  }
}

if (form) {
  const panel = document.getElementById("browser-encryption");
  const checkbox = document.getElementById("encrypt-in-browser");
  const status = document.getElementById("encryption-status");
  panel.hidden = false;
  let encrypted = false;
  form.addEventListener("submit", async (event) => {
    if (!checkbox.checked || encrypted) return;
    event.preventDefault();
    // Catch the usual mistakes while the text is still readable: once encrypted, a form
    // sent back with errors can only show the ciphertext.
    if (!form.checkValidity()) {
      form.reportValidity();
      status.textContent = "Please complete the highlighted field before sending.";
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Encrypting in your browser…";
    try {
      await encryptForm();
      encrypted = true;
      status.textContent = "Encrypted. Sending…";
      form.requestSubmit(button);
    } catch (error) {
      status.textContent = "Your browser could not encrypt the report (" + error.message + "). Nothing was " +
        "sent. Try again, or untick the box to send it over HTTPS without browser encryption.";
      button.disabled = false;
    }
  });
}
