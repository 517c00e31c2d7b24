// An independent yamux peer for interop tests: @chainsafe/libp2p-yamux over a plain TCP socket.
// Usage: node yamux-peer.mjs — listens on a free port of 127.0.0.1 and prints "listening <port>";
// for each connection, echoes every stream the other side opens, and opens one stream of its own
// that sends "from-node", half-closes, and prints "node-got:<reply>" once the reply has ended.
import net from 'node:net'
import { yamux } from '@chainsafe/libp2p-yamux'
import { AbstractMessageStream } from '@libp2p/utils'
import { logger } from '@libp2p/logger'

class SocketMessageStream extends AbstractMessageStream {
  constructor (socket) {
    super({ log: logger('socket'), direction: 'inbound' })
    this.socket = socket
    socket.on('data', (buf) => this.onData(buf))
    socket.on('end', () => this.onRemoteCloseWrite())
    socket.on('close', () => this.onTransportClosed())
    socket.on('error', () => {})
  }

  sendData (data) {
    // Node's socket buffers whatever the muxer hands it; yamux's own windows bound how much that is.
    for (const chunk of data) {
      this.socket.write(chunk)
    }
    return { sentBytes: data.byteLength, canSendMore: true }
  }

  sendReset () { this.socket.destroy() }
  sendPause () { this.socket.pause() }
  sendResume () { this.socket.resume() }
  async close () { this.socket.end() }
}

async function readAll (stream) {
  const parts = []
  for await (const chunk of stream) {
    parts.push(Buffer.from(chunk.subarray ? chunk.subarray() : chunk))
  }
  return Buffer.concat(parts)
}

const server = net.createServer((socket) => {
  const muxer = yamux({ enableKeepAlive: false })().createStreamMuxer(new SocketMessageStream(socket))
  muxer.addEventListener('stream', (evt) => {
    // Echo: every message straight back (the stream queues what its window does not allow yet),
    // and half-close once the other side has.
    const stream = evt.detail
    stream.addEventListener('message', (message) => { stream.send(message.data) })
    stream.addEventListener('remoteCloseWrite', () => {
      stream.close().catch((err) => console.error('close failed', err))
    })
  })
  ;(async () => {
    const stream = await muxer.createStream()
    stream.send(Buffer.from('from-node'))
    await stream.close()
    const reply = await readAll(stream)
    console.log('node-got:' + reply.toString())
  })().catch((err) => console.error('open failed', err))
})
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port))
