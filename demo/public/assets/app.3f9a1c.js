// A "hashed" asset: its name changes when its content does, so browsers may keep it for a year.
document.documentElement.dataset.portico = 'demo';
