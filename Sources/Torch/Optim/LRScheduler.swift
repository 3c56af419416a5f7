import Foundation

/// What a schedule sees when its scheduler steps: PyTorch's `last_epoch` and `_step_count` after
/// the step, the group's rate before it (`group['lr']`) and its initial rate (`base_lr`).
public struct LRStep: Sendable, Equatable {
    public var epoch: Int
    /// 1 on the scheduler's first step (the one its construction takes), then 2, 3, ...
    public var stepCount: Int
    public var currentLR: Double
    public var initialLR: Double

    public init(epoch: Int, stepCount: Int, currentLR: Double, initialLR: Double) {
        self.epoch = epoch
        self.stepCount = stepCount
        self.currentLR = currentLR
        self.initialLR = initialLR
    }
}

/// A learning-rate rule, attached to an optimizer by `LRScheduler`. Two forms, as in PyTorch:
/// `lr(step:initial:)` is the closed form (`_get_closed_form_lr`, used when jumping to an epoch)
/// and `chainedLR` is what `get_lr` computes on an ordinary `step()`, often from the current rate.
/// PyTorch's printed sequences come from the chained form, so the schedules here reproduce its
/// arithmetic operation for operation.
public protocol LRSchedule {
    /// The rate at `step` (epoch) for a group whose schedule starts from `initial`.
    func lr(step: Int, initial: Double) -> Double
    /// The rate after stepping into `s.epoch`; defaults to the closed form.
    func chainedLR(_ s: LRStep) -> Double
}

extension LRSchedule {
    public func chainedLR(_ s: LRStep) -> Double { lr(step: s.epoch, initial: s.initialLR) }
}

/// Python's floor division, for the closed forms' `//`.
private func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

// MARK: schedules

/// nnU-Net's polynomial decay, `initial * (1 - step / maxSteps)^power` set directly each step
/// (0 from maxSteps on). PyTorch's own recursive variant is `PolynomialLR`.
public struct PolyLR: LRSchedule {
    public var maxSteps: Int
    public var power: Double

    public init(maxSteps: Int, power: Double = 0.9) {
        precondition(maxSteps > 0, "PolyLR needs maxSteps > 0")
        self.maxSteps = maxSteps
        self.power = power
    }

    public func lr(step: Int, initial: Double) -> Double {
        initial * Foundation.pow(Swift.max(0, 1 - Double(step) / Double(maxSteps)), power)
    }
}

/// torch.optim.lr_scheduler.PolynomialLR: decays by `((1 - t/T) / (1 - (t-1)/T))^power` each step
/// up to totalIters, then keeps the rate.
public struct PolynomialLR: LRSchedule {
    public var totalIters: Int
    public var power: Double

    public init(totalIters: Int = 5, power: Double = 1) {
        precondition(totalIters > 0, "PolynomialLR needs totalIters > 0")
        self.totalIters = totalIters
        self.power = power
    }

    public func lr(step: Int, initial: Double) -> Double {
        initial * Foundation.pow(1.0 - Double(Swift.min(totalIters, step)) / Double(totalIters), power)
    }

    public func chainedLR(_ s: LRStep) -> Double {
        if s.epoch == 0 || s.epoch > totalIters { return s.currentLR }
        let t = Double(totalIters)
        let factor = Foundation.pow((1.0 - Double(s.epoch) / t) / (1.0 - Double(s.epoch - 1) / t), power)
        return s.currentLR * factor
    }
}

/// torch.optim.lr_scheduler.CosineAnnealingLR: from the initial rate down to etaMin over tMax
/// steps and, past tMax, back up and down again with period 2 tMax. Stepping uses PyTorch's
/// recursive form (including its special step after each minimum), jumping the closed form.
public struct CosineAnnealingLR: LRSchedule {
    public var tMax: Int
    public var etaMin: Double

    public init(tMax: Int, etaMin: Double = 0) {
        precondition(tMax > 0, "CosineAnnealingLR needs tMax > 0")
        self.tMax = tMax
        self.etaMin = etaMin
    }

    public func lr(step: Int, initial: Double) -> Double {
        etaMin + (initial - etaMin) * (1 + cos(Double.pi * Double(step) / Double(tMax))) / 2
    }

    public func chainedLR(_ s: LRStep) -> Double {
        let e = s.epoch, t = Double(tMax)
        if e == 0 { return s.currentLR }
        if s.stepCount == 1 && e > 0 {
            return etaMin + (s.initialLR - etaMin) * (1 + cos(Double(e) * Double.pi / t)) / 2
        }
        if (e - 1 - tMax) % (2 * tMax) == 0 {
            return s.currentLR + (s.initialLR - etaMin) * (1 - cos(Double.pi / t)) / 2
        }
        return (1 + cos(Double.pi * Double(e) / t)) / (1 + cos(Double.pi * Double(e - 1) / t)) * (s.currentLR - etaMin) + etaMin
    }
}

/// torch.optim.lr_scheduler.StepLR: multiplies the rate by gamma every stepSize steps.
public struct StepLR: LRSchedule {
    public var stepSize: Int
    public var gamma: Double

    public init(stepSize: Int, gamma: Double = 0.1) {
        precondition(stepSize > 0, "StepLR needs stepSize > 0")
        self.stepSize = stepSize
        self.gamma = gamma
    }

    public func lr(step: Int, initial: Double) -> Double {
        initial * Foundation.pow(gamma, Double(floorDiv(step, stepSize)))
    }

    public func chainedLR(_ s: LRStep) -> Double {
        (s.epoch == 0 || s.epoch % stepSize != 0) ? s.currentLR : s.currentLR * gamma
    }
}

/// torch.optim.lr_scheduler.ExponentialLR: multiplies the rate by gamma every step.
public struct ExponentialLR: LRSchedule {
    public var gamma: Double

    public init(gamma: Double) { self.gamma = gamma }

    public func lr(step: Int, initial: Double) -> Double { initial * Foundation.pow(gamma, Double(step)) }

    public func chainedLR(_ s: LRStep) -> Double { s.epoch == 0 ? s.currentLR : s.currentLR * gamma }
}

/// torch.optim.lr_scheduler.LinearLR, the usual warm-up: the factor on the initial rate moves
/// linearly from startFactor to endFactor over totalSteps steps, then stays.
public struct LinearWarmupLR: LRSchedule {
    public var startFactor: Double
    public var endFactor: Double
    public var totalSteps: Int

    public init(startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalSteps: Int = 5) {
        precondition((0...1).contains(startFactor), "LinearLR's start factor must lie in [0, 1]")
        precondition((0...1).contains(endFactor), "LinearLR's end factor must lie in [0, 1]")
        precondition(totalSteps >= 0, "LinearLR needs totalSteps >= 0")
        self.startFactor = startFactor
        self.endFactor = endFactor
        self.totalSteps = totalSteps
    }

    /// PyTorch's argument names.
    public init(startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalIters: Int) {
        self.init(startFactor: startFactor, endFactor: endFactor, totalSteps: totalIters)
    }

    public func lr(step: Int, initial: Double) -> Double {
        guard totalSteps > 0 else { return initial * endFactor }
        return initial * (startFactor + (endFactor - startFactor) * Double(Swift.min(totalSteps, step)) / Double(totalSteps))
    }

    public func chainedLR(_ s: LRStep) -> Double {
        if s.epoch == 0 { return s.currentLR * startFactor }
        if s.epoch > totalSteps { return s.currentLR }
        return s.currentLR * (1 + (endFactor - startFactor) / (Double(totalSteps) * startFactor + Double(s.epoch - 1) * (endFactor - startFactor)))
    }
}

/// PyTorch's name for `LinearWarmupLR`.
public typealias LinearLR = LinearWarmupLR

/// torch.optim.lr_scheduler.ConstantLR: the rate times `factor` until totalIters, then the
/// initial rate. The defaults (factor 1, no steps) keep the rate constant; PyTorch's are 1/3 and 5.
public struct ConstantLR: LRSchedule {
    public var factor: Double
    public var totalIters: Int

    public init(factor: Double = 1, totalIters: Int = 0) {
        precondition((0...1).contains(factor), "ConstantLR's factor must lie in [0, 1]")
        self.factor = factor
        self.totalIters = totalIters
    }

    public func lr(step: Int, initial: Double) -> Double {
        initial * (factor + (step >= totalIters ? 1 : 0) * (1 - factor))
    }

    public func chainedLR(_ s: LRStep) -> Double {
        if s.epoch == 0 { return s.currentLR * factor }
        if s.epoch != totalIters { return s.currentLR }
        return s.currentLR * (1.0 / factor)
    }
}

/// torch.optim.lr_scheduler.LambdaLR: the initial rate times `factor(step)`.
public struct LambdaLR: LRSchedule {
    public var factor: (Int) -> Double

    public init(_ factor: @escaping (Int) -> Double) { self.factor = factor }

    public func lr(step: Int, initial: Double) -> Double { initial * factor(step) }
}

/// torch.optim.lr_scheduler.SequentialLR: schedules one after another, switching at the
/// milestones; each counts its steps from its own start, begins there from the initial rate
/// (closed form at its step 0) and then steps as it would alone.
public struct SequentialLR: LRSchedule {
    public var schedules: [any LRSchedule]
    public var milestones: [Int]

    public init(_ schedules: [any LRSchedule], milestones: [Int]) {
        precondition(!schedules.isEmpty && milestones.count == schedules.count - 1,
                     "SequentialLR needs one milestone fewer than schedules")
        precondition(zip(milestones, milestones.dropFirst()).allSatisfy { $0 < $1 }, "SequentialLR's milestones must increase")
        self.schedules = schedules
        self.milestones = milestones
    }

    /// Which schedule runs at `step` and its own step count there (Python's bisect_right).
    private func locate(_ step: Int) -> (index: Int, local: Int) {
        let index = milestones.firstIndex { $0 > step } ?? milestones.count
        return (index, index == 0 ? step : step - milestones[index - 1])
    }

    public func lr(step: Int, initial: Double) -> Double {
        let (i, local) = locate(step)
        return schedules[i].lr(step: local, initial: initial)
    }

    public func chainedLR(_ s: LRStep) -> Double {
        let (i, local) = locate(s.epoch)
        if s.stepCount == 1 {
            // Construction: PyTorch resets the rates to the initial ones and starts the first
            // schedule; resuming at a later step, take the closed form there.
            if s.epoch == 0 {
                return schedules[0].chainedLR(LRStep(epoch: 0, stepCount: 1, currentLR: s.initialLR, initialLR: s.initialLR))
            }
            return schedules[i].lr(step: local, initial: s.initialLR)
        }
        if i > 0 && local == 0 { return schedules[i].lr(step: 0, initial: s.initialLR) }
        // The first schedule has stepped with the sequence since construction; a later one was
        // constructed (its step 1) and restarted at its milestone (step 2).
        let count = i == 0 ? s.stepCount : local + 2
        return schedules[i].chainedLR(LRStep(epoch: local, stepCount: count, currentLR: s.currentLR, initialLR: s.initialLR))
    }
}

// MARK: scheduler

/// Drives an optimizer's group learning rates by a schedule, like PyTorch's `_LRScheduler`:
/// construction records each group's `initialLR` (when unset) and takes the first step (to
/// epoch 0, or `lastEpoch + 1` when resuming); each `step()` moves one epoch (or iteration) on.
/// Call it after `optimizer.step()`.
public final class LRScheduler {
    public let optimizer: Optimizer
    public let schedule: any LRSchedule
    /// PyTorch's `last_epoch`: the step the current rates belong to.
    public private(set) var lastEpoch: Int
    /// PyTorch's `_step_count`: steps taken, including the one construction takes.
    public private(set) var stepCount = 0
    /// The initial rate of each group (PyTorch's `base_lrs`).
    public private(set) var baseLRs: [Double]
    /// The rates the last step set (PyTorch's `get_last_lr()`).
    public private(set) var currentLRs: [Double] = []

    /// `lastEpoch` -1 starts the schedule; a later value resumes after that epoch, from the
    /// groups' `initialLR` (their `lr` where unset).
    public init(_ optimizer: Optimizer, _ schedule: any LRSchedule, lastEpoch: Int = -1) {
        self.optimizer = optimizer
        self.schedule = schedule
        if lastEpoch == -1 {
            for i in optimizer.paramGroups.indices where optimizer.paramGroups[i].initialLR == nil {
                optimizer.paramGroups[i].initialLR = optimizer.paramGroups[i].lr
            }
        }
        baseLRs = optimizer.paramGroups.map { $0.initialLR ?? $0.lr }
        self.lastEpoch = lastEpoch
        step()
    }

    /// Moves to the next epoch with the schedule's chained (PyTorch `get_lr`) form.
    public func step() {
        stepCount += 1
        lastEpoch += 1
        apply { i, lr in
            schedule.chainedLR(LRStep(epoch: lastEpoch, stepCount: stepCount, currentLR: lr, initialLR: baseLR(i)))
        }
    }

    /// Jumps to `epoch` with the closed form (PyTorch's deprecated `step(epoch)`).
    public func step(epoch: Int) {
        stepCount += 1
        lastEpoch = epoch
        apply { i, _ in schedule.lr(step: epoch, initial: baseLR(i)) }
    }

    /// Jumps to a step (resuming); the same as `step(epoch:)`.
    public func set(step: Int) { self.step(epoch: step) }

    private func baseLR(_ group: Int) -> Double {
        group < baseLRs.count ? baseLRs[group] : (optimizer.paramGroups[group].initialLR ?? optimizer.paramGroups[group].lr)
    }

    private func apply(_ rate: (Int, Double) -> Double) {
        for i in optimizer.paramGroups.indices {
            optimizer.paramGroups[i].lr = rate(i, optimizer.paramGroups[i].lr)
        }
        currentLRs = optimizer.paramGroups.map(\.lr)
    }

    // MARK: state

    /// The scheduler's counters for checkpoints, with PyTorch's state_dict names. The schedule
    /// itself is configuration: rebuild it, construct the scheduler, then `loadState`.
    public struct State: Codable, Equatable, Sendable {
        public var lastEpoch: Int
        public var stepCount: Int
        public var baseLRs: [Double]
        public var lastLRs: [Double]

        public init(lastEpoch: Int, stepCount: Int, baseLRs: [Double], lastLRs: [Double]) {
            self.lastEpoch = lastEpoch
            self.stepCount = stepCount
            self.baseLRs = baseLRs
            self.lastLRs = lastLRs
        }

        private enum CodingKeys: String, CodingKey {
            case lastEpoch = "last_epoch", stepCount = "_step_count", baseLRs = "base_lrs", lastLRs = "_last_lr"
        }
    }

    public var state: State {
        State(lastEpoch: lastEpoch, stepCount: stepCount, baseLRs: baseLRs, lastLRs: currentLRs)
    }

    /// Restores saved counters and puts the saved rates back into the optimizer's groups (PyTorch
    /// leaves that to the optimizer's own state; doing both is harmless).
    public func loadState(_ saved: State) throws {
        let groups = optimizer.paramGroups.count
        guard saved.baseLRs.count == groups, saved.lastLRs.count == groups else {
            throw TorchError("the saved scheduler state has rates for \(saved.baseLRs.count) parameter group(s), the optimizer has \(groups)")
        }
        lastEpoch = saved.lastEpoch
        stepCount = saved.stepCount
        baseLRs = saved.baseLRs
        apply { i, _ in saved.lastLRs[i] }
    }
}
