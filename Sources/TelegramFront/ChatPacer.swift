import Synchronization

/// Spaces the status edits sent to one chat. Telegram allows a bot about one message a
/// second in a chat and twenty a minute in a group, counted over all its messages there,
/// so several jobs of one chat share one pace (groups, whose ids are negative, three times
/// slower). The edits of one message are throttled besides, by `editInterval`.
final class ChatPacer: Sendable {
    private let next = Mutex<[Int64: ContinuousClock.Instant]>([:])
    private let interval: Duration

    /// A pacer allowing one edit per `interval` in a private chat.
    init(interval: Duration) {
        self.interval = interval
    }

    /// Takes the chat's next turn and waits for it.
    func waitForTurn(in chat: Int64) async {
        let now = ContinuousClock.now
        let spacing = chat < 0 ? interval * 3 : interval
        let turn = next.withLock { next in
            if next.count > 10_000 { next = next.filter { $0.value > now } }  // forget idle chats
            let turn = max(now, next[chat] ?? now)
            next[chat] = turn + spacing
            return turn
        }
        if turn > now { try? await Task.sleep(until: turn) }
    }
}
