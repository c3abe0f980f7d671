// AudioWorklet processors for the earshot call page (no build step).
// 'capture': posts every input block (Float32, context rate) with the context frame of its
//            first sample; the page frames it and sends it to the server.
// 'tap':     posts every block of what the page is playing of the agent (after the gain that
//            a barge-in mutes), with its context frame: the page's record of what it played.
class BlockPoster extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0 && input[0].length > 0) {
      this.port.postMessage({ frame: currentFrame, samples: input[0].slice(0) });
    } else {
      this.port.postMessage({ frame: currentFrame, samples: new Float32Array(128) });
    }
    return true;
  }
}
registerProcessor('capture', BlockPoster);
registerProcessor('tap', class extends BlockPoster {});
