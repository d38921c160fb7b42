import DedicatedThreads

/// The self-pipe a connection's thread polls beside its socket (DedicatedThreads' own).
typealias WakePipe = DedicatedThreads.WakePipe
