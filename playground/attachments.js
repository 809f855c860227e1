// @ts-check
/** Images waiting to be sent with the next message, shown as removable thumbnails. */

/** @typedef {{ name: string, url: string }} Attachment */

/**
 * @param {File} file
 * @returns {Promise<string>} the file as a data: URI, which is how the server receives it
 */
function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error(`could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

export class Attachments {
  /** @param {HTMLElement} list where the thumbnails go */
  constructor(list) {
    this.list = list;
    /** @type {Attachment[]} */
    this.items = [];
  }

  /**
   * Adds the image files among `files` (others, e.g. a dropped text file, are skipped).
   * @param {Iterable<File>} files
   * @returns {Promise<number>} how many were added
   */
  async addFiles(files) {
    const images = [...files].filter((f) => f.type.startsWith('image/'));
    const read = await Promise.all(images.map(async (f) => ({ name: f.name || 'pasted image', url: await readAsDataUri(f) })));
    this.items.push(...read);
    this.render();
    return read.length;
  }

  /** @param {Attachment[]} items */
  restore(items) {
    this.items = [...items];
    this.render();
  }

  /** @returns {Attachment[]} the attachments, leaving none */
  take() {
    const items = this.items;
    this.items = [];
    this.render();
    return items;
  }

  render() {
    this.list.textContent = '';
    this.list.hidden = this.items.length === 0;
    this.items.forEach((item, i) => {
      const li = document.createElement('li');
      li.className = 'thumb';
      const img = document.createElement('img');
      img.src = item.url;
      img.alt = item.name;
      img.title = item.name;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'remove';
      remove.textContent = '×';
      remove.setAttribute('aria-label', `Remove ${item.name}`);
      remove.dataset.testid = 'remove-image';
      remove.addEventListener('click', () => {
        this.items.splice(i, 1);
        this.render();
      });
      li.append(img, remove);
      this.list.append(li);
    });
  }
}
