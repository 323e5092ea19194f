import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandLine, renderCard } from '../../src/recipe/card.js';
import type { Recipe } from '../../src/recipe/recipe.js';

const greedy: Recipe = {
  tool: 'model-soup',
  version: '1.2.3',
  strategy: 'greedy',
  ingredients: [
    { name: 'checkpoint-500', sha256: { 'model.safetensors': 'a'.repeat(64) }, score: 0.81 },
    { name: 'checkpoint-1000', sha256: { 'model.safetensors': 'b'.repeat(64) }, score: 0.86 },
    { name: 'checkpoint-1500', sha256: { 'model.safetensors': 'c'.repeat(64) }, score: 0.84 },
  ],
  chosen: ['checkpoint-1000', 'checkpoint-1500'],
  metric: 'accuracy',
  score: 0.875,
  validation: 'data/val.npz',
  acceptTies: false,
  steps: [
    { candidate: 'checkpoint-1500', score: 0.875, accepted: true },
    { candidate: 'checkpoint-500', score: 0.87, accepted: false, pruned: true },
  ],
  baseModel: 'google-bert/bert-base-uncased',
  libraryName: 'transformers',
  filesFrom: 'checkpoint-500',
  command: ['greedy', 'runs', '--val', 'data/val.npz', '-o', 'my soup'],
};

describe('model card', () => {
  it('renders front matter, the recipe, every ingredient with its score, greedy steps and the command', () => {
    assert.equal(
      renderCard(greedy, 'soup'),
      `---
tags:
- model-soup
- merge
- greedy-soup
library_name: transformers
base_model: google-bert/bert-base-uncased
---

# soup

This model is a model soup (Wortsman et al., ["Model soups"](https://arxiv.org/abs/2203.05482), ICML 2022): the weights of 2 checkpoints, all fine-tuned from [google-bert/bert-base-uncased](https://huggingface.co/google-bert/bert-base-uncased), averaged into one model with the same architecture and inference cost.

## Recipe

- Method: greedy soup (ingredients added best first, each kept only if the score improves; the mean of those kept)
- Metric: accuracy on \`data/val.npz\`
- Score of the soup: 0.8750 accuracy
- Ingredients in the soup: 2 of 3
- Config and tokenizer files from: checkpoint-500

### Ingredients

| ingredient | accuracy | in the soup |
| --- | ---: | --- |
| checkpoint-500 | 0.8100 | no |
| checkpoint-1000 | 0.8600 | yes |
| checkpoint-1500 | 0.8400 | yes |

### Greedy steps

| step | candidate | soup accuracy | decision |
| ---: | --- | ---: | --- |
| 1 | checkpoint-1000 | 0.8600 | start |
| 2 | checkpoint-1500 | 0.8750 | kept |
| 3 | checkpoint-500 | stopped early (at best 0.8700) | left out |

## Reproduce

\`\`\`sh
soup greedy runs --val data/val.npz -o 'my soup'
\`\`\`

Made with model-soup 1.2.3. The recipe, with the SHA-256 of every ingredient file, is stored in the weights' metadata under \`soup.recipe\`; \`soup card\` prints this card from it.
`,
    );
  });

  it('leaves out what the recipe does not know, and shows weights of weighted methods', () => {
    const card = renderCard(
      {
        tool: 'model-soup',
        version: '1.0.0',
        strategy: 'linear',
        ingredients: [
          { name: 'a|b', sha256: {}, weight: 0.25 },
          { name: 'c', sha256: {}, weight: 0.75 },
        ],
        chosen: ['a|b', 'c'],
      },
      'merged',
    );
    assert.match(card, /^---\ntags:\n- model-soup\n- merge\n- linear-soup\n---\n\n# merged\n/);
    assert.doesNotMatch(card, /base_model|library_name|Metric|```/);
    assert.match(card, /^- Method: linear$/m);
    assert.match(card, /^\| ingredient \| weight \| in the soup \|\n\| --- \| ---: \| --- \|\n\| a\\\|b \| 0\.25 \| yes \|\n\| c \| 0\.75 \| yes \|$/m);
  });

  it('puts the path of the soup it describes where the recorded command had {output}', () => {
    const card = renderCard({ ...greedy, command: ['uniform', 'runs', '-o', '{output}'] }, 'soup', 'out/soup');
    assert.match(card, /^soup uniform runs -o out\/soup$/m);
  });

  it('quotes arguments of the reproducing command that a shell would split or expand', () => {
    assert.equal(
      commandLine(['greedy', 'runs', '--eval-cmd', 'python eval.py {ckpt}', '-o', "it's"]),
      `soup greedy runs --eval-cmd 'python eval.py {ckpt}' -o 'it'\\''s'`,
    );
  });
});
